from pathlib import Path

import pytest
from hydra.utils import instantiate

from conftest import CONFIG_DIR, compose_train

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


def test_design_table_styles_are_all_there():
    assert {"starry_night", "the_scream", "shipwreck", "great_wave", "composition_vii", "udnie"} <= set(STYLES)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment):
    cfg = compose_train([f"experiment={experiment}"])
    assert cfg.trainer.max_steps > 0


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


def test_original_model_variant_and_gpu_trainer():
    cfg = compose_train(["model=transformer_original", "trainer=gpu"])
    assert (cfg.model.norm, cfg.model.upsample) == ("batch", "transposed")
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.accelerator == "gpu"
