from pathlib import Path

import pytest
from helpers import CONFIG_DIR, SHARED_DATA, compose_train
from hydra.utils import instantiate

STYLES = sorted(p.stem for p in (CONFIG_DIR / "style").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


def test_default_is_the_paper_recipe():
    cfg = compose_train([])
    assert cfg.style.name == "starry_night"
    assert dict(cfg.loss.content_layers) == {"relu2_2": 1.0}
    assert list(cfg.loss.style_layers) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert (cfg.data.image_size, cfg.data.batch_size, cfg.lr, cfg.trainer.max_steps) == (256, 4, 1e-3, 40000)
    assert cfg.loss.content_weight == 1e5 and cfg.loss.style_weight == 1e10
    assert cfg.loss_net.pretrained is True and cfg.loss_net.arch == "vgg16"
    assert (cfg.model.norm, cfg.model.upsample, cfg.model.num_residual) == ("instance", "nearest", 5)


@pytest.mark.parametrize("style", STYLES)
def test_every_style_composes(style):
    overrides = [f"style={style}"] + {"custom": ["style.image=x.jpg"], "multi": ["styles=[udnie,art/x.jpg]"]}.get(style, [])
    cfg = compose_train(overrides)
    if style == "multi":  # several styles: the list names the paintings, the name joins theirs
        assert cfg.style.name == "udnie+x" and not (cfg.style.file or cfg.style.image or cfg.style.procedural)
        return
    assert cfg.style.name and (cfg.style.file or cfg.style.image or cfg.style.procedural)
    if cfg.style.file:
        assert cfg.style.url.startswith("https://") and len(cfg.style.sha256) == 64


def _design_table() -> list[list[str]]:
    """The rows (style, file, url, sha256) of DESIGN.md's table of named paintings."""
    design = SHARED_DATA.parent / "DESIGN.md"
    if not design.is_file():
        pytest.skip(f"{design} not found (the shared/ folder beside the checkout)")
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in design.read_text().splitlines() if line.startswith("| ")]
    return [row for row in rows if len(row) == 4 and row[0] != "style"]


def test_each_painting_of_the_design_table_is_a_style_preset_with_its_file_url_and_checksum():
    table = _design_table()
    assert len(table) >= 6
    for name, file, url, sha256 in table:
        style = compose_train([f"style={name}"]).style
        assert (style.name, style.file, style.url, style.sha256) == (name, file, url, sha256), name


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_passes_the_range_checks_and_trains_something(experiment, tmp_path):
    from fast_style.training.spec import build_train_spec

    spec = build_train_spec(compose_train([f"experiment={experiment}", f"paths.output_dir={tmp_path}"]))
    assert spec.trainer["max_steps"] > 0 and spec.batch_size >= 1 and spec.styles


def test_demo_experiment_is_offline_and_small():
    cfg = compose_train(["experiment=demo"])
    assert cfg.loss_net.pretrained == "auto" and cfg.style.procedural == "swirls" and cfg.data.fill_with_samples is True
    assert cfg.data.image_size <= 128
    # checked on photos kept out of training
    assert cfg.check.demo_photos and Path(cfg.check.images).name == "held_out"
    assert Path(cfg.check.images).resolve() != Path(cfg.data.root).resolve()
    from fast_style.training.demo import HELD_OUT_PHOTOS, TRAINING_PHOTOS

    assert not set(HELD_OUT_PHOTOS) & set(TRAINING_PHOTOS)
    # a step count for fast CPUs, and a time budget Lightning understands for slow ones
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import Timer

    trainer = pl.Trainer(max_time=cfg.trainer.max_time, logger=False, enable_checkpointing=False)
    (timer,) = [c for c in trainer.callbacks if isinstance(c, Timer)]
    assert 60 <= timer.time_remaining() <= 6 * 60 and cfg.trainer.max_steps >= 400


def test_the_paper_recipe_has_no_check_and_no_input_skip():
    cfg = compose_train([])
    assert cfg.check is None and cfg.model.input_skip is False


def test_groups_instantiate(tmp_path):
    cfg = compose_train(["paths.output_dir=" + str(tmp_path), "trainer=cpu", f"data.root={tmp_path}"])
    data = instantiate(cfg.data)
    assert data.image_size == 256 and data.batch_size == 4
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    assert {type(c).__name__ for c in callbacks} == {"ModelCheckpoint", "OnExceptionCheckpoint", "StyleSamples", "ExportStyleModel"}
    trainer = instantiate(cfg.trainer, logger=False, callbacks=callbacks, enable_progress_bar=False)
    assert trainer.max_steps == 40000 and Path(trainer.default_root_dir) == tmp_path


def test_the_original_model_preset_builds_johnson_s_network():
    """model=transformer_original: batch norm and transposed-convolution upsampling (the
    paper's first version), sizes kept for any input; the default is instance norm and
    nearest upsampling."""
    import torch

    from fast_style.nn.transformer import build_transformer

    original = build_transformer(dict(compose_train(["model=transformer_original"]).model)).eval()
    kinds = {type(m).__name__ for m in original.modules()}
    assert {"BatchNorm2d", "ConvTranspose2d"} <= kinds and "InstanceNorm2d" not in kinds
    with torch.no_grad():
        assert original(torch.rand(1, 3, 36, 44)).shape == (1, 3, 36, 44)
    default = {type(m).__name__ for m in build_transformer(dict(compose_train([]).model)).modules()}
    assert "ConvTranspose2d" not in default and "BatchNorm2d" not in default
