"""The colour-moment term (fast_style.nn.losses): the painting's RGB mean and covariance in pixel space."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from helpers import compose_train, tiny_module
from torch.utils.data import DataLoader

from fast_style.nn.losses import (
    COLOUR_EPS,
    PerceptualLoss,
    colour_loss_per_image,
    colour_moments,
    style_loss,
)
from fast_style.nn.vgg import VGGFeatures


def test_colour_moments_by_hand():
    # two pixels (0, 0, 0) and (1, 0.5, 0): mean (0.5, 0.25, 0); var R 0.25, var G 0.0625, cov RG 0.125
    image = torch.tensor([[[[0.0, 1.0]], [[0.0, 0.5]], [[0.0, 0.0]]]])  # (1, 3, 1, 2)
    mean, root = colour_moments(image)
    torch.testing.assert_close(mean, torch.tensor([[0.5, 0.25, 0.0]]))
    r11 = math.sqrt(0.25 + COLOUR_EPS)
    r21 = 0.125 / r11
    r22 = math.sqrt(0.0625 + COLOUR_EPS - r21**2)
    expected = torch.tensor([[[r11, 0, 0], [r21, r22, 0], [0, 0, math.sqrt(COLOUR_EPS)]]])
    torch.testing.assert_close(root, expected)
    covariance = root @ root.transpose(1, 2) - COLOUR_EPS * torch.eye(3)
    torch.testing.assert_close(covariance[0, :2, :2], torch.tensor([[0.25, 0.125], [0.125, 0.0625]]))


def test_one_colour_image_has_finite_moments_and_gradient():
    image = torch.full((2, 3, 8, 8), 0.4, requires_grad=True)
    loss = colour_loss_per_image(image, torch.zeros(1, 3), torch.eye(3)[None] * 0.1)
    assert loss.shape == (2,) and loss.isfinite().all()
    loss.sum().backward()
    assert image.grad.isfinite().all()


def test_the_term_sees_the_palette_not_the_layout():
    """The painting's pixels shuffled have its moments (term 0) but not its Grams (style > 0);
    the photo has other moments (term > 0)."""
    torch.manual_seed(0)
    painting = torch.rand(1, 3, 32, 32) * torch.tensor([1.0, 0.6, 0.2]).view(1, 3, 1, 1)
    shuffled = painting.flatten(2)[..., torch.randperm(32 * 32)].view(1, 3, 32, 32)
    mean, root = colour_moments(painting)
    assert colour_loss_per_image(shuffled, mean, root).item() == pytest.approx(0.0, abs=1e-10)
    photo = torch.rand(1, 3, 32, 32)
    assert colour_loss_per_image(photo, mean, root).item() > 1e-3
    vgg = VGGFeatures(layers=["relu1_2", "relu2_2"], pretrained=False)
    grams = PerceptualLoss(loss_net=vgg, style_image=painting, content_layers={"relu1_2": 1.0},
                           style_layers={"relu2_2": 1.0}, content_weight=1.0, style_weight=1.0, tv_weight=0.0).grams()
    assert style_loss(vgg(shuffled), grams, {"relu2_2": 1.0}).item() > 0


def test_descending_the_term_gives_the_photo_the_paintings_palette():
    """Gradient descent on the pixels of a photo with the term alone reaches the painting's mean
    and covariance (the term can be optimised: its gradient points the right way)."""
    torch.manual_seed(1)
    painting = (torch.rand(1, 3, 24, 24) * 0.3 + torch.tensor([0.6, 0.3, 0.1]).view(1, 3, 1, 1))
    target_mean, target_root = colour_moments(painting)
    photo = torch.rand(1, 3, 24, 24).requires_grad_()
    start = colour_loss_per_image(photo, target_mean, target_root).item()
    optimizer = torch.optim.Adam([photo], lr=0.01)
    for _ in range(300):
        optimizer.zero_grad()
        colour_loss_per_image(photo, target_mean, target_root).sum().backward()
        optimizer.step()
    end = colour_loss_per_image(photo, target_mean, target_root).item()
    assert end < start / 100
    mean, _ = colour_moments(photo.detach())
    torch.testing.assert_close(mean, target_mean, atol=5e-3, rtol=0)


def _loss(colour_weight: float, paintings) -> PerceptualLoss:
    vgg = VGGFeatures(layers=["relu1_2", "relu2_2"], pretrained=False)
    return PerceptualLoss(loss_net=vgg, style_image=paintings, content_layers={"relu2_2": 1.0},
                          style_layers={"relu1_2": 1.0}, content_weight=2.0, style_weight=1e3, tv_weight=0.1,
                          colour_weight=colour_weight)


def test_perceptual_loss_adds_the_weighted_term_and_zero_when_off():
    torch.manual_seed(2)
    painting = torch.rand(1, 3, 40, 48)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32, requires_grad=True)
    on, off = _loss(50.0, painting)(y, x), _loss(0.0, painting)(y, x)
    mean, root = colour_moments(painting)
    torch.testing.assert_close(on["colour"], 50.0 * colour_loss_per_image(y, mean, root).mean())
    assert on["colour"] > 0 and off["colour"].item() == 0.0
    torch.testing.assert_close(on["total"], on["content"] + on["style"] + on["tv"] + on["colour"])
    torch.testing.assert_close(off["total"], off["content"] + off["style"] + off["tv"])
    for key in ("content", "style", "tv"):
        torch.testing.assert_close(on[key], off[key])
    on["total"].backward()
    assert y.grad.abs().sum() > 0


def test_each_image_is_compared_with_its_own_paintings_palette():
    torch.manual_seed(3)
    red, blue = torch.rand(1, 3, 32, 32) * 0.2, torch.rand(1, 3, 40, 40) * 0.2
    red[:, 0] += 0.8
    blue[:, 2] += 0.8
    both = _loss(1.0, [red, blue])
    y, x = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    got = both(y, x, torch.tensor([1, 0]))["colour"]
    alone = [_loss(1.0, p) for p in (red, blue)]
    expected = (alone[1](y[:1], x[:1])["colour"] + alone[0](y[1:], x[1:])["colour"]) / 2
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, both(y, x, torch.tensor([0, 1]))["colour"])


def test_targets_are_not_saved_so_models_from_before_the_term_load():
    loss = _loss(1.0, torch.rand(1, 3, 32, 32))
    state = loss.state_dict()
    assert not [key for key in state if "colour" in key]
    fresh = _loss(1.0, torch.rand(1, 3, 32, 32))
    before = fresh.colour_mean.clone()
    fresh.load_state_dict(state, strict=True)  # a state dict of before the term: loads
    torch.testing.assert_close(fresh.colour_mean, before)  # and the targets stay those of its painting


def test_configs_default_off_and_training_logs_the_term_only_when_on(tmp_path):
    assert compose_train([]).loss.colour_weight == 0
    assert compose_train(["loss=gatys"]).loss.colour_weight == 0
    assert compose_train(["experiment=demo"]).loss.colour_weight > 0

    def logged(weight):
        trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                             enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path)
        trainer.fit(tiny_module(loss={"colour_weight": weight}), DataLoader(torch.rand(2, 3, 32, 32), batch_size=2))
        return trainer.callback_metrics

    assert "train/colour" not in logged(0.0)
    metrics = logged(1e3)
    assert metrics["train/colour"] > 0
    torch.testing.assert_close(metrics["train/total"],
                               sum(metrics[f"train/{k}"] for k in ("content", "style", "tv", "colour")))
