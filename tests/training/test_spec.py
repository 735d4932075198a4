"""The training spec: built once from the composed config, which it never changes."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from helpers import TINY_OVERRIDES, compose_train
from omegaconf import OmegaConf

from fast_style.errors import FastStyleError
from fast_style.nn.losses import LOSS_TERMS, WEIGHT_KEYS, term_weights
from fast_style.training.spec import StyleSpec, TrainSpec, build_train_spec


def _same(a, b) -> bool:
    return OmegaConf.to_container(a, resolve=False) == OmegaConf.to_container(b, resolve=False)


@pytest.mark.parametrize("overrides", [
    [],
    ["style=multi", "styles=[starry_night,udnie]"],
    ["style=multi", "styles=[starry_night,udnie]", "style.size=128"],
    ["trainer=cpu"],
    ["trainer.precision=32-true"],
])
def test_building_the_spec_leaves_the_config_as_it_was(overrides, tmp_path):
    cfg = compose_train([*TINY_OVERRIDES, *overrides, f"paths.output_dir={tmp_path}"])
    before = copy.deepcopy(cfg)
    spec = build_train_spec(cfg)
    assert _same(cfg, before)
    assert cfg.trainer.precision == before.trainer.precision and cfg.channels_last == before.channels_last
    assert spec.trainer["precision"] == spec.device.precision != "auto"
    assert spec.device.channels_last in (True, False, "loss_net")
    assert all(isinstance(style, StyleSpec) for style in spec.styles)


def test_the_spec_holds_resolved_plain_values(tmp_path):
    cfg = compose_train([*TINY_OVERRIDES, "style=multi", "styles=[starry_night,udnie]", f"paths.output_dir={tmp_path}",
                         "lr=2e-3", "style_lr=1e-2", "seed=7"])
    spec = build_train_spec(cfg)
    assert spec.style_name == "starry_night+udnie" and spec.style_names == ["starry_night", "udnie"]
    assert [s.file for s in spec.styles] == ["starry_night.jpg", "udnie.jpg"] and spec.styles[0].size == 64
    assert (spec.lr, spec.style_lr, spec.seed, spec.batch_size) == (2e-3, 1e-2, 7, 2)
    assert spec.output_dir == tmp_path and spec.trainer["default_root_dir"] == str(tmp_path)
    assert spec.data["_target_"] == "fast_style.training.data.ContentDataModule"
    assert not any(OmegaConf.is_config(v) for v in (spec.model, spec.loss, spec.loss_net, spec.data, spec.trainer))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.lr = 1.0
    assert spec.named("x").style_name == "x" and spec.style_name == "starry_night+udnie"


def test_style_configs_are_read_from_the_folders_given(tmp_path):
    folder = tmp_path / "style"
    folder.mkdir()
    (folder / "mine.yaml").write_text("name: mine\nfile: mine.jpg\nurl: null\nsha256: null\nimage: null\n"
                                      "size: 99\nprocedural: null\n")
    cfg = compose_train([*TINY_OVERRIDES, "style=multi", "styles=[mine]", "style.size=null", f"paths.output_dir={tmp_path}"])
    assert build_train_spec(cfg, style_dirs=[folder]).styles == (StyleSpec(name="mine", file="mine.jpg", size=99),)
    with pytest.raises(FastStyleError, match="no style named 'starry_night'"):
        build_train_spec(compose_train([*TINY_OVERRIDES, "style=multi", "styles=[starry_night,udnie]"]),
                         style_dirs=[folder])


def test_a_bad_value_fails_while_building_the_spec():
    with pytest.raises(FastStyleError, match="lr=0"):
        build_train_spec(compose_train([*TINY_OVERRIDES, "lr=0"]))


def test_loss_terms_are_the_schemas_weights():
    """nn.losses.LOSS_TERMS and the loss schema name the same weights; validation checks each."""
    from fast_style.config import LossSchema

    schema_weights = tuple(f.name for f in dataclasses.fields(LossSchema) if f.name.endswith("_weight"))
    assert sorted(schema_weights) == sorted(WEIGHT_KEYS)
    optional = {f.name for f in dataclasses.fields(LossSchema) if f.default != "???"}  # not MISSING
    assert {t.weight_key for t in LOSS_TERMS if t.optional} == optional & set(WEIGHT_KEYS)
    off = {t.weight_key: 0.0 for t in LOSS_TERMS if t.optional}
    assert "temporal_weight" in off
    assert term_weights({"content_weight": 1, "style_weight": 2, "tv_weight": 3}) == {
        "content_weight": 1, "style_weight": 2, "tv_weight": 3, **off}
    for key in WEIGHT_KEYS:
        with pytest.raises(FastStyleError, match=f"loss.{key}=-1.0: must be 0"):
            build_train_spec(compose_train([*TINY_OVERRIDES, f"loss.{key}=-1.0"]))


def test_evaluate_describes_every_term_of_the_table():
    from fast_style.evaluation.evaluate import describe_loss

    loss = {"content_layers": {"relu2_2": 1.0}, "style_layers": {"relu1_2": 1.0, "relu2_2": 0.5},
            "content_weight": 1e5, "style_weight": 1e10, "tv_weight": 1e4, "temporal_weight": 0.0}
    assert describe_loss(loss) == "content relu2_2 x 100000; style relu1_2, relu2_2 (0.5) x 1e+10; tv x 10000"
    assert describe_loss({**loss, "temporal_weight": 1e6}).endswith("; temporal x 1e+06")


def test_train_spec_fields_are_typed():
    names = {f.name for f in dataclasses.fields(TrainSpec)}
    assert {"styles", "device", "model", "loss", "loss_net", "data", "trainer", "output_dir"} <= names
