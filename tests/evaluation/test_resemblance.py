"""Luminance SSIM and colour distance (fast_style.evaluation.resemblance): the formulas
against scikit-image's reference SSIM, and what each number does on known changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import random_photo
from skimage.metrics import structural_similarity

from fast_style.evaluation.resemblance import colour_distance, luminance, luminance_ssim


def _smooth_photo(seed: int, size: int = 64) -> torch.Tensor:
    """A photo-like image: random colours blurred into smooth shapes, (3, size, size)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, size // 8, size // 8, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0].clamp(0, 1)


def test_luminance_weights_are_bt601():
    image = torch.zeros(3, 2, 2)
    image[0], image[1], image[2] = 1.0, 0.5, 0.25
    assert torch.allclose(luminance(image), torch.full((2, 2), 0.299 + 0.5 * 0.587 + 0.25 * 0.114, dtype=torch.float64))


@pytest.mark.parametrize("noise", [0.02, 0.1, 0.3])
def test_ssim_matches_scikit_image(noise):
    photo = _smooth_photo(0)
    generator = torch.Generator().manual_seed(1)
    other = (photo + noise * torch.randn(photo.shape, generator=generator)).clamp(0, 1)
    reference = structural_similarity(
        luminance(photo).numpy(), luminance(other).numpy(), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0,
    )
    # scikit-image averages over the valid window positions too (it crops (win_size - 1) // 2)
    assert luminance_ssim(photo, other) == pytest.approx(reference, abs=1e-6)


def test_ssim_is_one_for_the_same_image_and_falls_with_noise():
    photo = _smooth_photo(2)
    generator = torch.Generator().manual_seed(3)
    scores = [luminance_ssim(photo, (photo + s * torch.randn(photo.shape, generator=generator)).clamp(0, 1))
              for s in (0.0, 0.05, 0.2, 0.5)]
    assert scores[0] == pytest.approx(1.0)
    assert scores == sorted(scores, reverse=True)
    assert scores[-1] < 0.2


def test_ssim_ignores_a_colour_change_that_keeps_luminance_structure():
    photo = _smooth_photo(4)
    tinted = (photo * torch.tensor([0.6, 0.8, 1.0])[:, None, None] + 0.1).clamp(0, 1)
    assert luminance_ssim(photo, tinted) > 0.9
    assert luminance_ssim(photo, _smooth_photo(5)) < 0.5


def test_ssim_accepts_a_batch_of_one_and_refuses_other_shapes():
    photo = _smooth_photo(6)
    assert luminance_ssim(photo[None], photo) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one size"):
        luminance_ssim(photo, photo[:, :32])
    with pytest.raises(ValueError, match="at least 11x11"):
        luminance_ssim(photo[:, :8, :8], photo[:, :8, :8])
    with pytest.raises(ValueError, match="RGB"):
        luminance_ssim(photo[:1], photo[:1])


def test_colour_distance_is_zero_for_the_same_palette_whatever_the_layout():
    photo = torch.from_numpy(np.array(random_photo(40, 48, seed=7))).permute(2, 0, 1) / 255
    shuffled = photo.reshape(3, -1)[:, torch.randperm(48 * 40)].reshape(3, 48, 40)
    assert colour_distance(photo, photo) == pytest.approx(0.0, abs=1e-12)
    assert colour_distance(photo, shuffled) == pytest.approx(0.0, abs=1e-9)


def test_colour_distance_grows_with_a_palette_shift_and_compares_sizes():
    photo = _smooth_photo(8, size=64) * 0.8
    distances = [colour_distance(photo + shift, photo) for shift in (0.0, 0.05, 0.1, 0.2)]
    assert distances == sorted(distances)
    # a uniform shift s of every channel moves each projection u.(x + s) by s * sum(u):
    # the distance is s times the mean |sum(u)| over the seeded directions
    generator = torch.Generator().manual_seed(0)
    directions = torch.randn(128, 3, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    assert distances[2] == pytest.approx(0.1 * float(directions.sum(dim=1).abs().mean()), rel=1e-6)
    smaller = torch.nn.functional.interpolate(photo[None], size=(32, 32), mode="nearest")[0]
    assert colour_distance(smaller, photo) < 0.02


def test_colour_distance_is_symmetric_and_bounded():
    a, b = torch.zeros(3, 16, 16), torch.ones(3, 16, 16)
    assert colour_distance(a, b) == pytest.approx(colour_distance(b, a))
    assert 0 < colour_distance(a, b) <= np.sqrt(3)
