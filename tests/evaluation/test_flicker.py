"""The flicker measure: temporal warping error on a clip whose motion is known."""

from __future__ import annotations

import pytest
import torch
from helpers import random_photo

from fast_style.evaluation.flicker import flicker, known_motion_clip, warping_error
from fast_style.io.images import pil_to_tensor


@pytest.fixture
def photo() -> torch.Tensor:
    return pil_to_tensor(random_photo(96, 80, seed=4))[None]


def test_without_noise_each_frame_is_the_previous_one_moved(photo):
    clip, theta, mask = known_motion_clip(photo, frames=6, noise_std=0.0)
    assert clip.shape == (6, 3, 80, 96) and theta.shape == (1, 2, 3) and mask.shape == (1, 1, 80, 96)
    assert 0.8 < mask.mean().item() < 1.0  # the pan and zoom push some pixels out of view
    assert warping_error(clip, theta, mask) < 1.0  # only bilinear resampling, in 1/255
    assert (clip[1] - clip[0]).abs().mean().item() * 255 > 3  # ... while the frames do move


def test_the_identity_flickers_exactly_as_much_as_its_input(photo):
    result = flicker(lambda x: x, photo, frames=8)
    assert result["stylized"] == pytest.approx(result["input"], rel=1e-6) and result["ratio"] == pytest.approx(1.0)
    assert 1.0 < result["input"] < 4.0  # camera noise of 2/255 per frame (mean |difference| of two draws ~ 2.3)


def test_texture_fixed_to_the_frame_or_jumping_with_noise_is_measured(photo):
    pattern = (torch.arange(96)[None, None, None, :] % 2).float() * 0.3  # stripes that do not move with the scene
    steady = flicker(lambda x: x, photo, frames=8)
    fixed = flicker(lambda x: (x * 0.7 + pattern).clamp(0, 1), photo, frames=8)
    generator = torch.Generator().manual_seed(1)
    jumping = flicker(lambda x: (x + 0.1 * torch.randn(x.shape, generator=generator)).clamp(0, 1), photo, frames=8)
    assert fixed["ratio"] > 5 and jumping["ratio"] > 5 and steady["ratio"] == pytest.approx(1.0)


def test_the_clip_is_reproducible(photo):
    a, _, _ = known_motion_clip(photo, frames=4, seed=3)
    b, _, _ = known_motion_clip(photo, frames=4, seed=3)
    c, _, _ = known_motion_clip(photo, frames=4, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
