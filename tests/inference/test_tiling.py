"""Tiled inference with whole-image instance-norm statistics."""

from __future__ import annotations

import pytest
import torch

from fast_style.inference.tile_grid import make_tiles, ramp
from fast_style.inference.tiling import tiled_forward
from fast_style.nn.transformer import TransformerNet


def _net(**kwargs) -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(**{"width": 8, "num_residual": 1, **kwargs}).eval()


@pytest.fixture
def photo() -> torch.Tensor:
    torch.manual_seed(3)
    base = torch.rand(1, 3, 13, 17)
    return torch.nn.functional.interpolate(base, size=(97, 122), mode="bilinear")[0] + 0.05 * torch.rand(3, 97, 122)


@pytest.mark.parametrize("kwargs", [{}, {"norm": "batch", "upsample": "transposed"}, {"input_skip": True}])
@pytest.mark.parametrize("tile", [24, 40])
def test_tiled_matches_untiled(photo, kwargs, tile):
    model = _net(**kwargs)
    if kwargs.get("input_skip"):  # a trained one: the head is no longer zero, the gain not 1
        with torch.no_grad():
            model.head.conv.weight.normal_(0, 0.05)
            model.input_skip.copy_(torch.tensor([0.8, 1.1, 0.5]))
    with torch.no_grad():
        ref = model(photo[None])[0].clamp(0, 1)
        out = tiled_forward(model, photo, tile=tile, blend=8)
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() <= 0.1 / 255


def test_naive_tiles_would_show_seams(photo):
    """Tiles with their own instance-norm statistics differ visibly: the test above can fail."""
    model = _net()
    with torch.no_grad():
        photo = photo[:, :96, :96]
        ref = model(photo[None])[0].clamp(0, 1)
        naive = torch.zeros_like(ref)
        for y in range(0, 96, 32):
            for x in range(0, 96, 32):
                naive[:, y:y + 32, x:x + 32] = model(photo[None, :, y:y + 32, x:x + 32])[0].clamp(0, 1)
    assert (naive - ref).abs().max().item() > 2 / 255


@pytest.mark.parametrize("kwargs", [{}, {"norm": "batch", "upsample": "transposed"}])
def test_steps_reproduce_forward(photo, kwargs):
    """The network's step list, run by hand, is its forward pass (what tiling and export iterate)."""
    from fast_style.nn.transformer import step_conv, step_post

    model = _net(num_residual=2, **kwargs)
    steps = model.steps()
    assert sum(s.norm is not None for s in steps) == 3 + 2 * 2 + 2 and steps[-1].norm is None
    assert [s.level for s in steps] == [0, 1, 2, 2, 2, 2, 2, 1, 0, 0]
    x = photo[None, :, :45, :61]  # odd sizes: the up steps must restore them exactly
    h, skip, sizes = x, None, []
    with torch.no_grad():
        for step in steps:
            skip = h if step.opens_residual else skip
            z = step_conv(step, h, sizes)
            h = step_post(step, z if step.norm is None else step.norm(z), skip)
        assert h.shape == x.shape and not sizes
        assert torch.equal(h, model(x))


def test_tiles_partition_the_image():
    tiles = make_tiles(101, 70, tile=24, context=30)
    cover = torch.zeros(101, 70, dtype=torch.int32)
    for t in tiles:
        cover[t.y0:t.y1, t.x0:t.x1] += 1
        assert t.y0 % 4 == 0 and t.x0 % 4 == 0 and t.cy0 % 4 == 0 and t.cx0 % 4 == 0
        assert t.cy0 == max(0, t.y0 - 32) and t.cx1 == min(70, t.x1 + 32)
    assert bool((cover == 1).all())


def test_blend_ramps_sum_to_one():
    rising, falling = ramp(8, 8, 0), ramp(8, 0, 8)
    assert torch.allclose(rising + falling, torch.ones(8))
    assert rising[0] < 0.05 and rising[-1] > 0.95
