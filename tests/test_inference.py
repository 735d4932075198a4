"""Stylizer: precision choice, the fast accurate path, tiled vs untiled, statistics merging."""

from __future__ import annotations

import pytest
import torch

from fast_style.inference.runner import FoldedHead, Stylizer, resolve_precision
from fast_style.inference.tiling import _Moments
from fast_style.nn.transformer import TransformerNet

TOLERANCE = 3 / 255  # README: the fast path stays within 3/255 of eager fp32


def _net() -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(width=8, num_residual=2).eval()


def _photo(h: int = 48, w: int = 56) -> torch.Tensor:
    torch.manual_seed(1)
    base = torch.rand(1, 3, 6, 7)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear") + 0.03 * torch.rand(1, 3, h, w)


def test_auto_precision_is_fp32_on_cpu():
    """bf16 misses the 3/255 goal (docs), so auto keeps fp32; explicit choices still work."""
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == torch.float32
    assert resolve_precision("bf16", cpu) == torch.bfloat16
    assert resolve_precision("fp32", cpu) == torch.float32


def test_channels_last_fp32_matches_reference():
    model, x = _net(), _photo()
    with torch.no_grad():
        ref = model(x).clamp(0, 1)
    out = Stylizer(_net(), channels_last=True, pixel_budget=0)(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape and out.is_contiguous()
    assert (out - ref).abs().max().item() <= 1e-4


@pytest.mark.parametrize("size", [(20, 26), (21, 27), (9, 10)])
def test_folded_head_equals_the_head(size):
    head = _net().head
    torch.manual_seed(4)
    x = torch.randn(2, 8, *size)
    with torch.no_grad():
        assert torch.allclose(FoldedHead(head)(x), head(x), atol=1e-5)


def test_stylizer_leaves_the_callers_model_alone():
    model = _net()
    stylizer = Stylizer(model)
    assert isinstance(stylizer.model.head, FoldedHead) and not isinstance(model.head, FoldedHead)
    assert not isinstance(Stylizer(_net(), fold_head=False).model.head, FoldedHead)


def test_bf16_is_close_but_not_within_the_fp32_tolerance_claim():
    """What the docs say about bf16: right picture (small mean error), not exact."""
    model, x = _net(), _photo()
    with torch.no_grad():
        ref = model(x).clamp(0, 1)
    out = Stylizer(_net(), dtype=torch.bfloat16, pixel_budget=0)(x)
    assert (out - ref).abs().mean().item() < 4 / 255
    assert (out - ref).abs().max().item() > 1e-3  # it really ran in bf16


def test_tiled_single_image_matches_untiled():
    model, x = _net(), _photo(60, 76)
    whole = Stylizer(model, pixel_budget=0)(x)
    tiled = Stylizer(_net(), pixel_budget=1, tile_size=24, tile_blend=8)(x)
    assert tiled.shape == whole.shape == (1, 3, 60, 76)
    assert (tiled - whole).abs().max().item() <= 0.1 / 255


def test_moments_merge_equals_whole_statistics():
    torch.manual_seed(2)
    z = torch.randn(1, 4, 30, 50) * torch.tensor([1.0, 3.0, 0.1, 10.0]).view(1, 4, 1, 1) + 5
    moments = _Moments()
    for part in (z[..., :7, :], z[..., 7:20, :13], z[..., 7:20, 13:], z[..., 20:, :]):
        moments.add(part)
    norm = torch.nn.InstanceNorm2d(4, affine=False)
    a, c = moments.affine(norm.eps)
    expected = norm(z)
    assert torch.allclose(z * a.view(1, -1, 1, 1) + c.view(1, -1, 1, 1), expected, atol=1e-4)


@pytest.mark.slow
def test_compiled_fp32_matches_reference():
    model, x = _net(), _photo(32, 40)
    with torch.no_grad():
        ref = model(x).clamp(0, 1)
    out = Stylizer(_net(), channels_last=True, compile=True, pixel_budget=0)(x)
    assert (out - ref).abs().max().item() <= TOLERANCE
