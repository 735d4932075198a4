"""Stylizer: precision choice, the fast accurate path, tiled vs untiled, statistics merging."""

from __future__ import annotations

import pytest
import torch

from fast_style.inference.folding import FoldedHead, FoldedUpConv, fold_for_inference
from fast_style.inference.runners.pytorch import Stylizer, resolve_precision
from fast_style.inference.tiling import _Moments
from fast_style.nn.transformer import TransformerNet, UpConv

TOLERANCE = 3 / 255  # fp32 fast paths (folding, compile) against eager fp32: float rounding only


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


@pytest.mark.parametrize("size", [(10, 14), (7, 9), (1, 1), (2, 3)])
def test_folded_upconv_equals_the_upconv(size):
    """Every target size: exactly 2x takes the folded path, 2h - 1 (odd encoder sizes) the original."""
    torch.manual_seed(5)
    up = UpConv(6, 5, norm="instance", upsample="nearest")
    x = torch.randn(2, 6, *size)
    folded = FoldedUpConv(up)
    for target in [(2 * size[0], 2 * size[1]), (2 * size[0] - 1, 2 * size[1]), (2 * size[0] - 1, 2 * size[1] - 1)]:
        if min(target) < 2:
            continue  # reflection padding needs 2 rows
        with torch.no_grad():
            expected, got = up.resize_conv(x, target), folded.resize_conv(x, target)
        assert got.shape == expected.shape == (2, 5, *target)
        assert (got - expected).abs().max().item() < 1e-5, target


def test_folded_upconv_is_not_the_original_path():
    """The folded path really runs: its result differs from the original by rounding, not 0
    (the original is kept for odd sizes only), and a transposed upsampling is left alone."""
    torch.manual_seed(6)
    up = UpConv(16, 8, norm="instance", upsample="nearest")
    x = torch.randn(1, 16, 12, 12)
    with torch.no_grad():
        difference = (FoldedUpConv(up).resize_conv(x, (24, 24)) - up.resize_conv(x, (24, 24))).abs().max().item()
    assert 0 < difference < 1e-5
    assert not FoldedUpConv.fits(UpConv(16, 8, norm="instance", upsample="transposed"))
    transposed = TransformerNet(width=8, num_residual=1, upsample="transposed", norm="batch")
    assert not isinstance(fold_for_inference(transposed, head=False).up1, FoldedUpConv)
    assert fold_for_inference(transposed, head=False, upsample=True) is transposed


@pytest.mark.parametrize("size", [(48, 56), (45, 61)])
def test_folded_network_equals_the_network(size):
    """Whole network, even and odd sizes, one-style and a multi-style one with a per-pixel style map."""
    x = _photo(*size)
    torch.manual_seed(7)
    multi = TransformerNet(width=8, num_residual=1, num_styles=3).eval()
    style_map = torch.softmax(torch.randn(1, 3, *size), dim=1)
    for model, style in [(_net(), None), (multi, style_map)]:
        folded = fold_for_inference(model)
        assert isinstance(folded.up1, FoldedUpConv) and isinstance(folded.up2, FoldedUpConv)
        assert isinstance(model.up1, UpConv)  # the caller's model is untouched
        with torch.no_grad():
            assert (folded(x, style) - model(x, style)).abs().max().item() < 1e-5


def test_stylizer_folds_the_upsampling_unless_told_not_to():
    model, x = _net(), _photo()
    with torch.no_grad():
        ref = model(x).clamp(0, 1)
    for fold in (True, False):
        stylizer = Stylizer(_net(), fold_upsample=fold, pixel_budget=0)
        assert isinstance(stylizer.model.up2, FoldedUpConv) == fold
        assert (stylizer(x) - ref).abs().max().item() < 1e-5
    tiled = Stylizer(_net(), pixel_budget=32 * 32, tile_size=32)
    assert tiled.needs_tiling(*x.shape[-2:])
    assert (tiled(x) - ref).abs().max().item() < 1e-4


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


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (20-45 s)
@pytest.mark.slow
def test_compiled_fp32_matches_reference():
    model, x = _net(), _photo(32, 40)
    with torch.no_grad():
        ref = model(x).clamp(0, 1)
    out = Stylizer(_net(), channels_last=True, compile=True, pixel_budget=0)(x)
    assert (out - ref).abs().max().item() <= TOLERANCE
