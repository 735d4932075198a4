"""optimize.py: pixel optimisation with the training losses (Gatys et al.'s baseline)."""

from pathlib import Path

import pytest
import torch
from helpers import TINY_LOSS, compose, random_photo, run_entry

from fast_style.errors import FastStyleError
from fast_style.evaluation.optimize import PhotoLoss, optimize, optimize_pixels
from fast_style.io.images import load_image
from fast_style.nn.vgg import VGGFeatures


def compose_optimize(overrides: list[str]):
    return compose("optimize", overrides)


@pytest.fixture
def photo_and_style(tmp_path: Path) -> tuple[Path, Path]:
    photo, style = tmp_path / "photo.png", tmp_path / "painting.png"
    random_photo(40, 32, seed=1).save(photo)
    random_photo(48, 48, seed=2).save(style)
    return photo, style


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    """One random VGG-16 for the module (building a torchvision VGG takes seconds)."""
    return VGGFeatures(layers=["relu1_2", "relu2_2"], pretrained=False, seed=0)


def tiny_loss(vgg: VGGFeatures, style: torch.Tensor) -> PhotoLoss:
    return PhotoLoss(loss_net=vgg, style_image=style, **TINY_LOSS)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimisation_lowers_the_total_loss(vgg, photo_and_style, optimizer):
    photo, style = (load_image(p).unsqueeze(0) for p in photo_and_style)
    loss = tiny_loss(vgg, style)
    result = optimize_pixels(loss=loss, content=photo, iterations=6, optimizer=optimizer)
    totals = [terms["total"] for terms in result.losses]
    assert len(totals) == 7 and len(result.seconds) == 7
    assert totals[-1] < 0.7 * totals[0]
    # the start is the photo itself: (almost) no content loss; the reported final loss is the image's
    assert result.losses[0]["content"] < 1e-3 * totals[0]
    final = loss(result.image, photo)
    assert float(final["total"]) == pytest.approx(totals[-1], rel=1e-4)
    assert result.image.min() >= 0 and result.image.max() <= 1
    assert result.seconds == sorted(result.seconds)


def test_fixed_content_targets_give_the_training_loss_values(vgg, photo_and_style):
    photo, style = (load_image(p).unsqueeze(0) for p in photo_and_style)
    loss = tiny_loss(vgg, style)
    output = torch.rand_like(photo)
    plain = loss(output, photo)
    loss.fix_content(photo)
    fixed = loss(output, photo)
    assert {k: float(v) for k, v in fixed.items()} == pytest.approx({k: float(v) for k, v in plain.items()}, rel=1e-5)


def test_noise_start_is_seeded_and_differs_from_the_photo(vgg, photo_and_style):
    photo, style = (load_image(p).unsqueeze(0) for p in photo_and_style)
    loss = tiny_loss(vgg, style)
    runs = [optimize_pixels(loss=loss, content=photo, iterations=0, init="noise", seed=s) for s in (0, 0, 1)]
    assert torch.equal(runs[0].image, runs[1].image) and not torch.equal(runs[0].image, runs[2].image)
    assert runs[0].losses[0]["content"] > 10 * optimize_pixels(loss=loss, content=photo, iterations=0).losses[0]["content"]


def test_gatys_loss_composes_and_runs_with_a_random_vgg19(photo_and_style, tmp_path):
    photo, style = photo_and_style
    cfg = compose_optimize([f"content={photo}", "style=custom", f"style.image={style}", "loss=gatys",
                            "loss_net.pretrained=false", "loss_net.pool=avg", "iterations=3", "progress=false",
                            f"output={tmp_path / 'out.png'}", "save_every=2"])
    assert cfg.loss_net.arch == "vgg19" and list(cfg.loss.content_layers) == ["conv4_2"]
    assert list(cfg.loss.style_layers) == ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    assert compose_optimize(["content=x"]).loss_net.arch == "vgg16"
    output = optimize(cfg)
    assert output == tmp_path / "out.png" and load_image(output).shape == (3, 32, 40)
    assert (tmp_path / "out_iter00002.png").is_file()
    with pytest.raises(FastStyleError, match="exists; pass overwrite=true"):
        optimize(cfg)


def test_bad_options_are_user_errors(photo_and_style, tmp_path):
    photo, style = photo_and_style
    base = [f"content={photo}", "style=custom", f"style.image={style}", "loss_net.pretrained=false", "progress=false"]
    for extra, message in [("optimizer=sgd", "optimizer=sgd"), ("init=grey", "init=grey"),
                           (f"output={tmp_path / 'no' / 'x.png'}", "does not exist")]:
        with pytest.raises(FastStyleError, match=message):
            optimize(compose_optimize([*base, extra]))


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (12-40 s)
@pytest.mark.slow
def test_optimize_entry_end_to_end(photo_and_style, tmp_path):
    photo, style = photo_and_style
    args = [f"content={photo}", "style=custom", f"style.image={style}", "loss_net.pretrained=false",
            "iterations=4", "size=32", "progress=false"]
    done = run_entry("optimize.py", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    output = tmp_path / "photo_custom_optimized.png"
    assert load_image(output).shape == (3, 26, 32) and "written:" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["painting.png", "photo.png", output.name]  # no run folders
    again = run_entry("optimize.py", *args, cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1].startswith("error: ") and "overwrite=true" in again.stderr
