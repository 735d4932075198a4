"""The multi-style study's measurements (fast_style.evaluation.multistyle), without its training runs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from fast_style.evaluation import multistyle
from fast_style.evaluation.multistyle import (
    StudyError,
    StyleScorer,
    mask_halves,
    max_pixel_difference,
    monotone,
    tables,
    training_folder,
)
from fast_style.io.images import pil_to_tensor
from fast_style.nn.transformer import ConditionalInstanceNorm2d

from conftest import random_photo, two_style_net


class TinyTaps(nn.Module):
    """Two seeded convolutions in place of VGG (what is tested is the scorer's arithmetic;
    a random VGG-16 takes seconds to build)."""

    def __init__(self, *, layers, **_):
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.layers = list(layers)

    def forward(self, x):
        first = torch.relu(self.conv1(x))
        taps = {"relu1_2": first, "relu2_2": torch.relu(self.conv2(first))}
        return {name: taps[name] for name in self.layers}


def test_the_score_is_the_weighted_style_loss_averaged_over_the_images(monkeypatch):
    monkeypatch.setattr(multistyle, "VGGFeatures", TinyTaps)
    torch.manual_seed(1)
    styles = {"s": torch.rand(3, 24, 32), "t": torch.rand(3, 20, 20)}
    layers = {"relu1_2": 1.0, "relu2_2": 0.25}
    scorer = StyleScorer(style_images=styles, loss={"style_layers": layers, "style_weight": 1e3}, loss_net={})
    images = torch.rand(3, 3, 16, 16)

    def gram(f):  # (C, H, W) -> F F^T / (C H W)
        flat = f.reshape(f.shape[0], -1)
        return flat @ flat.T / flat.numel()

    net = TinyTaps(layers=layers).requires_grad_(False)
    for name, style in styles.items():
        targets = {layer: gram(f[0]) for layer, f in net(style[None]).items()}
        features = net(images)
        by_hand = [1e3 * sum(weight * ((gram(features[layer][i]) - targets[layer]) ** 2).mean()
                             for layer, weight in layers.items()) for i in range(3)]
        assert scorer.score(images, name) == pytest.approx(float(sum(by_hand) / 3), rel=1e-5)
    assert scorer.score(images, "s") != pytest.approx(scorer.score(images, "t"))


def test_each_half_of_a_mask_is_closer_to_its_own_style():
    net = two_style_net()
    with torch.no_grad():  # the styles share every norm row but the last norm's shift: they differ only locally
        for norm in net.modules():
            if isinstance(norm, ConditionalInstanceNorm2d):
                norm.weight[1], norm.bias[1] = norm.weight[0], norm.bias[0]
        net.up2.norm.bias[1] += 1.0
    photos = torch.stack([pil_to_tensor(random_photo(96, 32, seed=seed)) for seed in (1, 2)])
    halves = mask_halves(net, photos, 0, 1)
    assert halves["left_own"] < halves["left_other"] / 10 and halves["right_own"] < halves["right_other"] / 10


def test_monotone():
    assert monotone([1, 2, 2, 5], rising=True) and not monotone([1, 3, 2], rising=True)
    assert monotone([5, 2, 2, 1], rising=False) and not monotone([3, 1, 2], rising=False)
    assert monotone([], rising=True) and monotone([7.0], rising=False)


def test_max_pixel_difference_is_in_8_bit_steps():
    a = torch.zeros(1, 3, 4, 4)
    b = a.clone()
    b[0, 1, 2, 3] = 3 / 255
    b[0, 0, 0, 0] = 0.4 / 255  # rounds to the same 8-bit value
    assert max_pixel_difference(a, b) == 3.0 and max_pixel_difference(b, a) == 3.0
    assert max_pixel_difference(a, a) == 0.0


def test_tables_show_every_figure_of_the_report():
    report = {
        "new_style": "d",
        "four_styles": {"per_style": [{"style": "a", "single": 1.5, "multi": 1.65, "ratio": 1.1},
                                      {"style": "b", "single": 2.0, "multi": 2.1, "ratio": 1.05}],
                        "parameters_multi": 1_700_000, "parameters_singles": 6_800_000,
                        "batch_single": 4, "batch_multi": 8},
        "mixing": {"first": "a", "second": "b", "monotone": True, "weights": [
            {"a": 0.0, "loss_first": 1.0, "loss_second": 3.0, "max_diff_to_first_alone": 0.0},
            {"a": 0.5, "loss_first": 2.0, "loss_second": 2.0, "max_diff_to_first_alone": 41.0}]},
        "finetune": {"lr": 0.01, "single_loss": 2.5, "reached_at": 100, "steps": 400, "old_styles_max_diff": 0.0,
                     "styles_after": ["a", "b", "d"], "curve": [{"step": 50, "loss": 3.1}, {"step": 100, "loss": 2.4}]},
        "mask": {"left_own": 0.01, "left_other": 0.2, "right_own": 0.02, "right_other": 0.3},
        "onnx_max_diff": 3.2e-6,
    }
    text = tables(report)
    for line in ("batch: one-style models 4, the 2-style model 8 (4 images of each style a step)",
                 "| a | 1.5 | 1.65 | 1.10 |", "| b | 2 | 2.1 | 1.05 |",
                 "parameters: four-style 1,700,000, four one-style models 6,800,000 (0.25x)",
                 "| weight of b | L_s vs a | L_s vs b | max diff to a alone (1/255) |",
                 "| 0.00 | 1 | 3 | 0 |", "| 0.50 | 2 | 2 | 41 |", "monotone: True",
                 "fine-tuning d (lr 0.01): one-style model L_s 2.5 after 400 steps; reached at step 100 (0.25 of the steps); "
                 "old styles' max pixel change 0/255; styles ['a', 'b', 'd']",
                 "| 50 | 3.1 |", "| 100 | 2.4 |",
                 "left own 0.0100 / other 0.2000; right own 0.0200 / other 0.3000",
                 "ONNX with a style_weights input vs PyTorch: max |diff| 3.2e-06"):
        assert line in text, line
    report["finetune"]["reached_at"] = None
    assert "reached at step None (never)" in tables(report)


def test_the_multi_style_batch_defaults_to_the_one_style_batch_per_style(tmp_path):
    settings = multistyle.StudySettings(output_dir=tmp_path, photos=tmp_path, style_dir=tmp_path, steps=4, size=32,
                                        batch_size=3, model="tiny", seed=0)
    assert multistyle.multi_batch(settings, 4) == 12
    assert multistyle.multi_batch(dataclasses.replace(settings, multi_batch_size=5), 4) == 5


def test_the_training_folder_links_all_but_the_held_out_photos(tmp_path):
    source = tmp_path / "photos"
    (source / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/c.png"):
        random_photo(20, 16, seed=len(name)).save(source / name)
    target, held = training_folder(source, ["b"], tmp_path / "train")
    assert held == [source / "b.png"]
    assert sorted(p.name for p in target.iterdir()) == ["a.png", "c.png"]
    assert {p.name: p.resolve() for p in target.iterdir() if p.is_symlink()} == {
        "a.png": (source / "a.png").resolve(), "c.png": (source / "sub" / "c.png").resolve()}
    assert training_folder(source, ["b"], tmp_path / "train")[0] == target  # again: the links are kept
    with pytest.raises(StudyError, match=r"^held_out photos \['z'\] are not in .*photos; name photos") as caught:
        training_folder(source, ["b", "z"], tmp_path / "other")
    assert "\n" not in str(caught.value)
