"""scripts/evaluate.py: a style model against pixel optimisation, under its training loss."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from helpers import CONFIG_DIR, TINY_LOSS, compose, random_photo, save_two_styles, two_style_net
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.evaluation.evaluate import (
    evaluate,
    first_reaching,
    loss_net_kwargs,
    open_trained,
    style_config,
)
from fast_style.evaluation.flicker import flicker
from fast_style.io.images import pil_to_tensor, square_image, tensor_to_pil
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import save_style_model
from fast_style.nn.transformer import TransformerNet


def compose_evaluate(overrides: list[str]):
    return compose("evaluate", overrides)


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    metadata = StyleModelMetadata(style_name="my_painting", loss=TINY_LOSS, loss_net="random(seed=3)", steps=7)
    return save_style_model(TransformerNet(width=8, num_residual=1), tmp_path / "tiny.safetensors", metadata=metadata)


def test_evaluate_end_to_end_writes_table_json_and_grid(tiny_model, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    random_photo(40, 32, seed=1).save(photos / "a.png")
    random_photo(32, 48, seed=2).save(photos / "b.jpg")
    random_photo(48, 48, seed=3).save(photos / "c.png")  # left out by num_images=2
    random_photo(64, 48, seed=4).save(tmp_path / "painting.png")
    out = tmp_path / "eval"
    cfg = compose_evaluate([f"ckpt={tiny_model}", f"images={photos}", "num_images=2", "size=32", "iterations=[4,2]",
                            "style=custom", f"style.image={tmp_path / 'painting.png'}", f"output={out}", "progress=false"])
    report = evaluate(cfg)
    table = capsys.readouterr().out
    assert "VGG-16 random(seed=3)" in table  # the loss network recorded in the model, named
    assert "content relu2_2 x 100000; style relu1_2, relu2_2 x 1e+10; tv x 10000" in table
    for row in ("| feed-forward |", "| optimisation, 2 iterations |", "| optimisation, 4 iterations |"):
        assert row in table
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["iterations"] == [2, 4] and [Path(i["path"]).name for i in saved["images"]] == ["a.png", "b.jpg"]
    for image in saved["images"]:
        totals = image["optimization_totals"]
        assert len(totals) == 5 and image["optimization"]["4"]["total"] == totals[4] and totals[4] < totals[0]
        assert image["optimization"]["2"]["seconds"] < image["optimization"]["4"]["seconds"]
        assert set(image["feed_forward"]) == {"content", "style", "tv", "colour", "total", "seconds"}
    summary = saved["summary"]["methods"]
    mean_total = sum(i["feed_forward"]["total"] for i in saved["images"]) / 2
    assert summary["feed_forward"]["total"] == pytest.approx(mean_total)
    assert summary["optimization_4"]["speedup"] == pytest.approx(
        summary["optimization_4"]["seconds"] / summary["feed_forward"]["seconds"])
    assert (out / "table.md").read_text().strip() == table.split("\nwritten:")[0].strip()
    with Image.open(out / "grid.png") as grid:  # 4 columns (photo, ff, 2, 4) and 2 rows of 32 px cells
        assert grid.size == (4 * 36 + 4, 18 + 2 * 36 + 4)
    assert report["summary"] == saved["summary"]
    flick = saved["summary"]["flicker"]  # the default 16-frame known-motion clip per photo
    assert flick["stylized"] > 0 and flick["input"] > 0
    assert flick["ratio"] == pytest.approx(sum(i["flicker"]["ratio"] for i in saved["images"]) / 2)
    assert f"stylized {flick['stylized']:.2f}, input {flick['input']:.2f}" in table
    with pytest.raises(FastStyleError, match="exists; pass overwrite=true"):
        evaluate(cfg)


def test_loss_network_comes_from_the_model_unless_overridden(tiny_model):
    trained = open_trained(tiny_model)
    record = trained.metadata
    assert record.loss == TINY_LOSS and trained.style_name == "my_painting"
    kwargs, notes = loss_net_kwargs(metadata=record, overrides={"arch": None, "pool": None, "weights": None})
    assert kwargs == {"arch": "vgg16", "pool": "max", "pretrained": False, "weights": None, "seed": 3}
    assert any("assumed vgg16" in note for note in notes)
    kwargs, _ = loss_net_kwargs(metadata=dataclasses.replace(record, loss_net="file:/w/vgg.pth"), overrides={"arch": "vgg19"})
    assert kwargs["weights"] == "/w/vgg.pth" and kwargs["arch"] == "vgg19"
    assert loss_net_kwargs(metadata=dataclasses.replace(record, loss_net="imagenet"), overrides={})[0]["pretrained"] is True
    with pytest.raises(FastStyleError, match="which loss network"):
        loss_net_kwargs(metadata=dataclasses.replace(record, loss_net=""), overrides={})


def test_lightning_checkpoint_records_its_loss_network(tmp_path):
    model = TransformerNet(width=8, num_residual=1)
    checkpoint = {
        "state_dict": {f"transformer.{k}": v for k, v in model.state_dict().items()},
        "hyper_parameters": {"model": model.config, "loss": TINY_LOSS, "style": {"name": "x"},
                             "loss_net": {"arch": "vgg19", "pool": "avg", "pretrained": "auto", "seed": 5},
                             "loss_net_source": "random(seed=5)"},
        "global_step": 11,
    }
    torch.save(checkpoint, tmp_path / "last.ckpt")
    record = open_trained(tmp_path / "last.ckpt").metadata
    kwargs, notes = loss_net_kwargs(metadata=record, overrides={})
    assert kwargs == {"arch": "vgg19", "pool": "avg", "seed": 5, "pretrained": False, "weights": None} and notes == []
    assert record.steps == 11


def test_style_is_found_by_the_model_style_name():
    cfg = compose_evaluate(["ckpt=x", "images=y"])
    assert style_config(cfg=cfg, style_name="demo_swirls", config_dir=CONFIG_DIR)["procedural"] == "swirls"
    with pytest.raises(FastStyleError, match="style=custom style.image=PATH"):
        style_config(cfg=cfg, style_name="nobody", config_dir=CONFIG_DIR)


def test_first_reaching():
    assert first_reaching([5.0, 4.0, 3.0, 2.5], 3.0) == 2 and first_reaching([5.0, 4.0], 1.0) is None


# ---------------------------------------------------------------------------- a multi-style model


@pytest.fixture
def two_styles(tmp_path: Path) -> Path:
    return save_two_styles(tmp_path / "two.safetensors", loss=TINY_LOSS, loss_net="random(seed=3)", steps=7)


@pytest.mark.parametrize("styles, message", [
    (None, r"^two.safetensors holds 2 styles \(a, b\): choose one with styles=a \(a name, or an index 0..1\)$"),
    ("c", r"^styles=c: no style 'c' in two.safetensors; its styles: a, b \(or their indices 0..1\)$"),
    ("'a:0.5,b:0.5'", "a mix; this measures one style at a time, e.g. styles=a"),
    ("[a,b]", "give one style, by name or index"),
    ("b", r"^no style config is named 'b' \(the model's style\)"),  # its painting: the style config named b
])
def test_a_multi_style_model_is_evaluated_one_named_style_at_a_time(two_styles, tmp_path, styles, message):
    random_photo(40, 32, seed=1).save(tmp_path / "a.png")
    cfg = compose_evaluate([f"ckpt={two_styles}", f"images={tmp_path}", *([f"styles={styles}"] if styles else [])])
    with pytest.raises(FastStyleError, match=message) as caught:
        evaluate(cfg, config_dir=CONFIG_DIR)
    assert "\n" not in str(caught.value)


def test_a_one_style_model_takes_its_own_name_or_no_styles(tiny_model, tmp_path):
    cfg = compose_evaluate([f"ckpt={tiny_model}", f"images={tmp_path}", "styles=other"])
    with pytest.raises(FastStyleError, match="^styles=other: tiny.safetensors holds one style, my_painting; drop styles=$"):
        evaluate(cfg)


def test_the_chosen_style_runs_the_feed_forward_pass_and_the_flicker_clip(two_styles, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    random_photo(40, 32, seed=1).save(photos / "a.png")
    random_photo(64, 48, seed=4).save(tmp_path / "painting.png")
    out = tmp_path / "eval"
    cfg = compose_evaluate([f"ckpt={two_styles}", f"images={photos}", "styles=1", "size=32", "iterations=[1]",
                            "flicker=4", "style=custom", f"style.image={tmp_path / 'painting.png'}",
                            f"output={out}", "progress=false"])
    report = evaluate(cfg)
    assert report["style_name"] == "b" and report["model_styles"] == ["a", "b"]
    assert "(b of its styles a, b, 7 steps)" in capsys.readouterr().out
    net, b = two_style_net(), torch.tensor([0.0, 1.0])
    photo = square_image(photos / "a.png", 32)[None]
    with torch.no_grad():
        expected = net(photo, b).clamp(0, 1)
    with Image.open(out / "grid.png") as grid:  # the feed-forward cell: row 0, column 1
        cell = pil_to_tensor(grid.convert("RGB").crop((4 + 36, 22, 4 + 36 + 32, 22 + 32)))
    assert (cell - pil_to_tensor(tensor_to_pil(expected[0]))).abs().max() <= 1 / 255 + 1e-6
    assert report["images"][0]["flicker"] == pytest.approx(flicker(lambda x: net(x, b), photo, frames=4))
