"""The multi-style study's measurements (studies.multistyle), without its training runs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import random_photo, two_style_net
from torch import nn

from fast_style.io.images import pil_to_tensor
from fast_style.nn.transformer import ConditionalInstanceNorm2d
from studies import multistyle
from studies.multistyle import (
    StudyError,
    StyleScorer,
    mask_halves,
    max_pixel_difference,
    monotone,
    tables,
    training_folder,
)


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
        "new_style": "d", "seeds": [1, 2],
        "four_styles": {"per_style": [
            {"style": "a", "single": {"mean": 1.5, "min": 1.4, "max": 1.6, "runs": [1.4, 1.6]},
             "multi": {"mean": 1.65, "min": 1.6, "max": 1.7, "runs": [1.6, 1.7]}, "ratio": 1.1,
             "ratio_per_seed": [1.6 / 1.4, 1.7 / 1.6]},
            {"style": "b", "single": {"mean": 2.0, "min": 1.0, "max": 3.0, "runs": [1.0, 3.0]},
             "multi": {"mean": 2.1, "min": 2.0, "max": 2.2, "runs": [2.0, 2.2]}, "ratio": 1.05,
             "ratio_per_seed": [2.0, 2.2 / 3.0]}],
            "parameters_multi": 1_700_000, "parameters_singles": 6_800_000, "batch_single": 4, "batch_multi": 8},
        "mixing": {"first": "a", "second": "b", "monotone": True, "weights": [
            {"a": 0.0, "loss_first": 1.0, "loss_second": 3.0, "max_diff_to_first_alone": 0.0},
            {"a": 0.5, "loss_first": 2.0, "loss_second": 2.0, "max_diff_to_first_alone": 41.0}]},
        "finetune": {"lr": 0.01, "steps": 400, "runs": [
            {"seed": 1, "single_loss": 2.5, "reached_at": 100, "old_styles_max_diff": 0.0, "styles_after": ["a", "b", "d"],
             "curve": [{"step": 50, "loss": 3.1}, {"step": 100, "loss": 2.4}]},
            {"seed": 2, "single_loss": 2.0, "reached_at": None, "old_styles_max_diff": 0.0, "styles_after": ["a", "b", "d"],
             "curve": [{"step": 50, "loss": 3.3}, {"step": 100, "loss": 2.2}]}]},
        "mask": {"left_own": 0.01, "left_other": 0.2, "right_own": 0.02, "right_other": 0.3},
        "onnx_max_diff": 3.2e-6,
    }
    text = tables(report)
    for line in ("seeds: 1, 2 (each model trained once per seed",
                 "batch: one-style models 4, the 2-style model 8 (4 images of each style a step)",
                 "| a | 1.5 (1.4-1.6) | 1.65 (1.6-1.7) | 1.10 | 1.14 / 1.06 |", "| b | 2 (1-3) | 2.1 (2-2.2) | 1.05 | 2.00 / 0.73 |",
                 "parameters: four-style 1,700,000, four one-style models 6,800,000 (0.25x)",
                 "mixing (the model of seed 1):",
                 "| weight of b | L_s vs a | L_s vs b | max diff to a alone (1/255) |",
                 "| 0.00 | 1 | 3 | 0 |", "| 0.50 | 2 | 2 | 41 |", "monotone: True",
                 "fine-tuning d (seed 1, lr 0.01): one-style model L_s 2.5 after 400 steps; reached at step 100 "
                 "(0.25 of the steps); old styles' max pixel change 0/255; styles ['a', 'b', 'd']",
                 "fine-tuning d (seed 2, lr 0.01): one-style model L_s 2 after 400 steps; reached at step None (never)",
                 "| step | L_s, seed 1 | L_s, seed 2 |", "| 50 | 3.1 | 3.3 |", "| 100 | 2.4 | 2.2 |",
                 "left own 0.0100 / other 0.2000; right own 0.0200 / other 0.3000",
                 "ONNX with a style_weights input vs PyTorch: max |diff| 3.2e-06"):
        assert line in text, line


def test_summary_of_the_seeds():
    assert multistyle.summary([3.0, 1.0, 2.0]) == {"mean": 2.0, "min": 1.0, "max": 3.0, "runs": [3.0, 1.0, 2.0]}


def test_the_multi_style_batch_is_the_one_style_batch_unless_set(tmp_path):
    settings = multistyle.StudySettings(output_dir=tmp_path, project=tmp_path, photos=tmp_path, style_dir=tmp_path, steps=4, size=32,
                                        batch_size=3, model="tiny")
    assert multistyle.multi_batch(settings) == 3
    assert multistyle.multi_batch(dataclasses.replace(settings, multi_batch_size=12)) == 12
    assert multistyle.multi_batch(dataclasses.replace(settings, multi_batch_size=0)) == 0  # train.py refuses it


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


@pytest.mark.parametrize("seeds", [(), (42, 42)])
def test_the_seeds_must_be_given_each_once(tmp_path, seeds):
    settings = multistyle.StudySettings(output_dir=tmp_path, project=tmp_path, photos=tmp_path, style_dir=tmp_path, steps=4, size=32,
                                        batch_size=3, model="tiny", seeds=seeds)
    with pytest.raises(StudyError, match=r"seeds=\[.*\]: give one seed or more, each once"):
        multistyle.run_study(settings, styles=["a", "b"], new_style="c", held_out=[], eval_size=32,
                             finetune_checkpoints=2)
