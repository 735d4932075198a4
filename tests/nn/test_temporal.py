"""The flow-free temporal term (fast_style.nn.temporal) and its use in the training step:
the known warp, its validity mask, the loss of networks that do and do not commute
with it, seeding, and a training step with the term on and off."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from helpers import compose_train, tiny_module
from torch import nn
from torch.utils.data import DataLoader

from fast_style.errors import FastStyleError
from fast_style.nn.temporal import (
    MASK_TOLERANCE,
    MAX_BRIGHTNESS,
    NOISE_STD,
    Motion,
    affine_theta,
    flicker,
    sample_motion,
    second_view,
    temporal_loss,
    valid_mask,
    warp,
)
from fast_style.training.module import StyleTransferModule

QUIET = {"noise_std": 0.0, "max_brightness": 0.0}


def _motion(shift=(0.0, 0.0), angle=0.0, zoom=1.0) -> Motion:
    return Motion(torch.tensor([shift]), torch.tensor([angle]), torch.tensor([zoom]))


# ------------------------------------------------------------------ the warp and its mask


@pytest.mark.parametrize("size", [(32, 32), (20, 28), (256, 256)])
def test_zero_motion_is_the_identity_with_every_pixel_valid(size):
    x = torch.rand(2, 3, *size)
    theta = affine_theta(Motion.still(2), size)
    # fp32 normalised coordinates: exact at 32 px, off by about size * 2^-24 px elsewhere (1.5e-5 at 256)
    atol = 1e-6 if size == (32, 32) else 1e-7 * max(size)
    torch.testing.assert_close(warp(x, theta), x, rtol=0, atol=atol)
    assert valid_mask(theta, size).eq(1).all()
    view = second_view(x, motion=Motion.still(2), **QUIET)
    torch.testing.assert_close(view.images, x, rtol=0, atol=atol)


def test_integer_shift_moves_the_image_by_exactly_that_many_pixels():
    x = torch.rand(1, 3, 16, 20)
    theta = affine_theta(_motion(shift=(3.0, -2.0)), (16, 20))  # 3 px right, 2 px up
    moved, mask = warp(x, theta), valid_mask(theta, (16, 20))
    torch.testing.assert_close(moved[..., :14, 3:], x[..., 2:, :17], rtol=0, atol=1e-5)
    expected = torch.zeros(16, 20)
    expected[:14, 3:] = 1  # the 3 left columns and 2 bottom rows came from outside the frame
    assert torch.equal(mask[0, 0], expected)


def test_rotation_is_clockwise_and_zoom_scales_about_the_centre():
    x = torch.zeros(1, 1, 9, 13)  # not square: pixels stay square under rotation
    x[..., 4, 10] = 1  # 4 px right of the centre pixel (4, 6)
    turned = warp(x, affine_theta(_motion(angle=90.0), (9, 13)), padding_mode="zeros")
    assert turned[0, 0, 8, 6] == pytest.approx(1, abs=1e-5)  # now 4 px below it (y points down)
    assert turned.sum() == pytest.approx(1, abs=1e-4)
    x = torch.zeros(1, 1, 9, 9)
    x[..., 4, 6] = 1  # 2 px right of the centre
    zoomed = warp(x, affine_theta(_motion(zoom=2.0), (9, 9)), padding_mode="zeros")
    assert zoomed[0, 0, 4, 8] == pytest.approx(1, abs=1e-5) and zoomed[0, 0, 4, 7] == pytest.approx(0.5, abs=1e-5)


def test_mask_is_exactly_where_the_sampled_point_lies_inside_the_frame():
    h, w = 24, 30
    motion = Motion(torch.tensor([[2.3, -1.6], [-2.9, 0.4]]), torch.tensor([1.0, -0.8]), torch.tensor([1.03, 0.97]))
    theta = affine_theta(motion, (h, w))
    mask = valid_mask(theta, (h, w))
    # the sampled point of every output pixel, in input pixel indices
    grid = torch.nn.functional.affine_grid(theta, [2, 1, h, w], align_corners=False)
    col, row = ((grid[..., 0] + 1) * w - 1) / 2, ((grid[..., 1] + 1) * h - 1) / 2
    inside = (col >= 0) & (col <= w - 1) & (row >= 0) & (row <= h - 1)
    # (points within the tolerance of the last pixel centre may go either way)
    edge = torch.stack([col.abs(), (col - w + 1).abs(), row.abs(), (row - h + 1).abs()]).amin(0) < MASK_TOLERANCE
    assert torch.equal(mask[:, 0].bool()[~edge], inside[~edge])
    assert 0 < mask.mean() < 1 and not mask[:, 0, 0, 0].any()  # zoom out (0.97) leaves the corners empty


# ------------------------------------------------------------------ the loss


def test_networks_that_commute_with_the_warp_have_zero_temporal_loss():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    view = second_view(x, **QUIET)
    colour = nn.Conv2d(3, 3, kernel_size=1)  # an affine colour map: commutes with bilinear warps
    for net in (nn.Identity(), colour):
        assert flicker(net, x, view) < 1e-10


def test_a_pattern_fixed_to_the_frame_is_penalised_by_its_own_motion():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    view = second_view(x, **QUIET)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    pattern = 0.1 * torch.sin(xx / 2 + yy / 3).expand(4, 3, 32, 32)
    got = flicker(lambda images: images + pattern, x, view)
    # T(x2) - W(T(x)) = W(x) + P - W(x) - W(P) = P - W(P) on the valid pixels
    expected = ((pattern - warp(pattern, view.theta)).pow(2) * view.mask).sum() / (3 * view.mask.sum())
    assert got > 1e-4
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)


def test_camera_noise_costs_the_identity_its_variance():
    torch.manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(8, 3, 64, 64)  # no clipping at 0 or 1
    view = second_view(x)
    # mean of (beta + sigma eps)^2 = sigma^2 + B^2 / 3 (beta uniform in [-B, B])
    assert flicker(nn.Identity(), x, view).item() == pytest.approx(NOISE_STD**2 + MAX_BRIGHTNESS**2 / 3, rel=0.15)


def test_gradients_reach_both_views():
    first, second = torch.rand(2, 3, 16, 16, requires_grad=True), torch.rand(2, 3, 16, 16, requires_grad=True)
    view = second_view(torch.rand(2, 3, 16, 16), **QUIET)
    temporal_loss(second, first, view.theta, view.mask).backward()
    assert first.grad.abs().sum() > 0 and second.grad.abs().sum() > 0
    assert second.grad[view.mask.expand_as(second) == 0].eq(0).all()  # nothing from invalid pixels


def test_the_second_view_is_reproducible_under_a_seed():
    x = torch.rand(3, 3, 32, 32)

    def draw(seed: int):
        return second_view(x, generator=torch.Generator().manual_seed(seed))

    a, b, c = draw(1), draw(1), draw(2)
    assert torch.equal(a.images, b.images) and torch.equal(a.theta, b.theta) and torch.equal(a.mask, b.mask)
    assert not torch.equal(a.theta, c.theta)
    pl.seed_everything(7, verbose=False)
    d = second_view(x)
    pl.seed_everything(7, verbose=False)
    assert torch.equal(second_view(x).images, d.images)


def test_sampled_motions_stay_in_their_ranges():
    motion = sample_motion(1000, generator=torch.Generator().manual_seed(0), max_shift_px=2.0,
                           max_rotation_deg=1.5, max_zoom=0.05)
    assert motion.shift.abs().max() <= 2.0 and motion.shift.abs().max() > 1.9
    assert motion.angle.abs().max() <= 1.5 and (motion.zoom - 1).abs().max() <= 0.05


# ------------------------------------------------------------------ the training step


def _module(temporal_weight: float | None, **kwargs) -> StyleTransferModule:
    """The tiny module; ``temporal_weight`` None: a loss config from before the option existed."""
    return tiny_module(loss={} if temporal_weight is None else {"temporal_weight": temporal_weight}, **kwargs)


def _grads(module: StyleTransferModule) -> list[torch.Tensor]:
    return [p.grad.clone() for p in module.transformer.parameters()]


def test_weight_zero_is_the_step_as_before_and_draws_nothing():
    batch = torch.rand(2, 3, 32, 32)
    before = _module(None)  # a loss config from before the option existed
    reference = before.loss(before.transformer(batch), batch)  # PerceptualLoss alone
    reference["total"].backward()
    off = _module(0.0)
    rng = torch.get_rng_state()
    losses = off.step_losses(batch)
    assert torch.equal(torch.get_rng_state(), rng)  # no second view was drawn
    assert set(losses) == {"content", "style", "tv", "colour", "total", "style_per_image"}
    for term in losses:
        assert torch.equal(losses[term], reference[term]), term
    assert torch.equal(losses["total"], losses["content"] + losses["style"] + losses["tv"])
    losses["total"].backward()
    for got, expected in zip(_grads(off), _grads(before), strict=True):
        assert torch.equal(got, expected)


def test_temporal_term_is_added_and_reaches_the_transform_net():
    batch = torch.rand(2, 3, 32, 32)
    module = _module(1e3)
    losses = module.step_losses(batch)
    assert losses["temporal"] > 0
    torch.testing.assert_close(losses["total"], losses["content"] + losses["style"] + losses["tv"] + losses["temporal"])
    losses["temporal"].backward()
    grads = _grads(module)
    assert all(g.isfinite().all() for g in grads) and sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_both_views_stylized_as_in_separate_passes(norm):
    module = _module(1.0, model={"norm": norm})
    first, second = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    got = module._stylize_views(first, second)
    for images, out in zip((first, second), got, strict=True):
        torch.testing.assert_close(out, module.transformer(images), rtol=1e-5, atol=1e-5)


def test_training_logs_temporal_with_finite_gradients(tmp_path):
    module = _module(1e3, channels_last=True)

    class Check(pl.Callback):
        finite = []

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.finite.append(all(p.grad.isfinite().all() for p in pl_module.transformer.parameters()))

    check = Check()
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", precision="bf16-mixed", logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         default_root_dir=tmp_path, callbacks=[check])
    trainer.fit(module, DataLoader(torch.rand(4, 3, 32, 32), batch_size=2))
    metrics = trainer.callback_metrics
    assert metrics["train/temporal"] > 0 and metrics["train/temporal"].dtype == torch.float32
    torch.testing.assert_close(metrics["train/total"], sum(metrics[f"train/{k}"]
                                                           for k in ("content", "style", "tv", "temporal")))
    assert check.finite == [True, True]


def test_negative_weight_is_refused():
    with pytest.raises(FastStyleError, match="loss.temporal_weight=-1.0"):
        _module(-1.0)


def test_configs_default_off_and_video_preset_on():
    assert compose_train([]).loss.temporal_weight == 0
    assert compose_train(["loss=gatys"]).loss.temporal_weight == 0  # from the schema's default
    video = compose_train(["loss=perceptual_video"]).loss
    assert video.temporal_weight > 0 and video.content_weight == 1e5 and video.style_weight == 1e10
