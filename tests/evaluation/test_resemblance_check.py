"""The check on held-out photos (fast_style.evaluation.resemblance_check): its verdicts on
models whose answer is known, and `train.py experiment=demo` ending with it."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import TINY_OVERRIDES, random_photo, run_entry, save_two_styles, two_style_net
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.evaluation.resemblance_check import Resemblance, check_resemblance
from fast_style.io.images import pil_to_tensor, square_image, tensor_to_pil
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import save_style_model
from fast_style.nn.transformer import TransformerNet


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "held_out"
    root.mkdir()
    for i in range(2):
        random_photo(90 + 10 * i, 70, seed=40 + i).save(root / f"photo_{i}.png")
    return root


def _save(net: TransformerNet, path) -> str:
    return str(save_style_model(net, path, metadata=StyleModelMetadata(style_name="known")))


def test_a_network_that_passes_the_photo_through_keeps_it_and_takes_no_palette(tmp_path, photos, style_file, capsys):
    identity = TransformerNet(width=4, num_residual=1, input_skip=True)  # exactly the identity when new
    results = check_resemblance(model_path=_save(identity, tmp_path / "id.safetensors"), images=photos,
                                style_image=style_file, output_dir=tmp_path / "out", size=64)
    assert [r.photo for r in results] == ["photo_0.png", "photo_1.png"]
    for r in results:
        assert r.ssim == pytest.approx(1.0, abs=1e-3)
        assert r.stylized_colour == pytest.approx(r.photo_colour, rel=0.02)
        assert r.keeps_photo() and not r.takes_palette()
    report = json.loads((tmp_path / "out" / "resemblance.json").read_text())
    assert [p["keeps_photo"] for p in report["photos"]] == [True, True]
    assert [p["takes_palette"] for p in report["photos"]] == [False, False]
    assert (tmp_path / "out" / "grid.png").is_file() and (tmp_path / "out" / "photo_0_known.png").is_file()
    printed = capsys.readouterr().out
    assert "photo_1.png" in printed and "(above 60%)" in printed and str(tmp_path / "out" / "grid.png") in printed


def test_the_thresholds_decide_the_verdicts(tmp_path, photos, style_file, capsys):
    identity = TransformerNet(width=4, num_residual=1, input_skip=True)
    check_resemblance(model_path=_save(identity, tmp_path / "id.safetensors"), images=photos, style_image=style_file,
                      output_dir=tmp_path / "out", size=64, min_ssim=1.01, max_colour_ratio=1.05)
    report = json.loads((tmp_path / "out" / "resemblance.json").read_text())
    assert report["min_ssim"] == 1.01 and report["max_colour_ratio"] == 1.05
    assert [(p["keeps_photo"], p["takes_palette"]) for p in report["photos"]] == [(False, True), (False, True)]
    assert "(below 1.01)" in capsys.readouterr().out


def test_verdicts_of_one_photo():
    r = Resemblance("p.png", ssim=0.55, photo_colour=0.2, stylized_colour=0.1, stylized="s.png")
    assert r.colour_ratio == pytest.approx(0.5) and r.keeps_photo() and r.takes_palette()
    assert not r.keeps_photo(0.6) and not r.takes_palette(0.4)
    same = Resemblance("p.png", ssim=0.2, photo_colour=0.0, stylized_colour=0.1, stylized="s.png")
    assert same.colour_ratio == float("inf") and not same.takes_palette() and not same.keeps_photo()


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (12-40 s)
@pytest.mark.slow
def test_the_demo_experiment_ends_with_the_check_on_photos_it_did_not_train_on(tmp_path, image_folder):
    held_out = tmp_path / "data" / "demo" / "held_out"
    result = run_entry("train.py", "experiment=demo", *TINY_OVERRIDES, f"data.root={image_folder}",
                       f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", "trainer.max_steps=2",
                       "check.size=64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    pytest.importorskip("skimage")
    assert sorted(p.name for p in held_out.iterdir()) == ["chelsea.png", "coffee.png"]
    report = json.loads((tmp_path / "run" / "held_out" / "resemblance.json").read_text())
    assert [p["photo"] for p in report["photos"]] == ["chelsea.png", "coffee.png"]
    assert all(-1 <= p["ssim"] <= 1 and p["photo_colour"] > 0 for p in report["photos"])
    assert "Style transfer on photos the model did not train on (64 px)" in result.stdout
    assert f"grid:      {tmp_path / 'run' / 'held_out' / 'grid.png'}" in result.stdout
    # the training photos were the given folder: no held-out photo among them
    assert not {"chelsea.png", "coffee.png"} & {p.name for p in image_folder.rglob("*")}


def test_an_unreadable_photo_is_skipped_and_named_and_bad_options_are_one_line(tmp_path, photos, style_file, capsys):
    from fast_style.errors import FastStyleError

    (photos / "broken.png").write_bytes(b"not a png")
    model = _save(TransformerNet(width=4, num_residual=1, input_skip=True), tmp_path / "id.safetensors")
    results = check_resemblance(model_path=model, images=photos, style_image=style_file,
                                output_dir=tmp_path / "out", size=64)
    assert [r.photo for r in results] == ["photo_0.png", "photo_1.png"]
    assert f"skipped {photos / 'broken.png'}:" in capsys.readouterr().err
    assert (photos / "broken.png").read_bytes() == b"not a png"
    with pytest.raises(FastStyleError, match="check.size=5"):
        check_resemblance(model_path=model, images=photos, style_image=style_file, output_dir=tmp_path / "o2", size=5)
    with pytest.raises(FastStyleError, match="check.max_colour_ratio=0"):
        check_resemblance(model_path=model, images=photos, style_image=style_file, output_dir=tmp_path / "o3",
                          max_colour_ratio=0)


def test_one_style_of_a_multi_style_model_is_checked_with_its_weights(tmp_path, photos, style_file):
    model = save_two_styles(tmp_path / "two.safetensors")
    b = torch.tensor([0.0, 1.0])
    results = check_resemblance(model_path=model, images=photos, style_image=style_file, output_dir=tmp_path / "b",
                                size=64, style_weights=b)
    with torch.no_grad():
        expected = two_style_net()(square_image(photos / "photo_0.png", 64)[None], b)[0].clamp(0, 1)
    written = tmp_path / "b" / "photo_0_b.png"
    assert results[0].stylized == str(written)
    with Image.open(written) as image:
        assert (pil_to_tensor(image) - pil_to_tensor(tensor_to_pil(expected))).abs().max() <= 1 / 255 + 1e-6
    assert json.loads((tmp_path / "b" / "resemblance.json").read_text())["style"] == "b"
    other = check_resemblance(model_path=model, images=photos, style_image=style_file, output_dir=tmp_path / "a",
                              size=64, style_weights=torch.tensor([1.0, 0.0]))
    assert other[0].ssim != results[0].ssim and (tmp_path / "a" / "photo_0_a.png").is_file()


@pytest.mark.parametrize("weights, message", [
    (None, r"^two.safetensors holds 2 styles \(a, b\): the check needs style_weights of shape \(2,\), e.g. one-hot "
           r"for a; got none$"),
    (torch.ones(3), r"got shape \(3,\)$"),
])
def test_a_multi_style_model_without_fitting_weights_is_one_line(tmp_path, photos, style_file, weights, message):
    model = save_two_styles(tmp_path / "two.safetensors")
    with pytest.raises(FastStyleError, match=message):
        check_resemblance(model_path=model, images=photos, style_image=style_file, output_dir=tmp_path / "out",
                          size=64, style_weights=weights)
