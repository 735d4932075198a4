"""scripts/evaluate.py: a style model against pixel optimisation, under its training loss."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.evaluation.evaluate import (
    evaluate,
    first_reaching,
    loss_net_kwargs,
    open_trained,
    style_config,
)
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import save_style_model
from fast_style.nn.transformer import TransformerNet

from conftest import CONFIG_DIR, TINY_LOSS, random_photo


def compose_evaluate(overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose(config_name="evaluate", overrides=overrides)


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
        assert set(image["feed_forward"]) == {"content", "style", "tv", "total", "seconds"}
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
