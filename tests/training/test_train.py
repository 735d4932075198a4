"""Training: in-process checks of the failure modes, and train.py end to end."""


import json

import pytest
import torch
from helpers import TINY_OVERRIDES, compose_train, run_entry, tensorboard_hparams
from safetensors import safe_open

from fast_style.devices import native_bf16
from fast_style.errors import FastStyleError
from fast_style.training.train import train


def _tiny_cfg(tmp_path, image_folder, style_file, *extra):
    return compose_train(
        TINY_OVERRIDES
        + [
            "style=custom",
            f"style.image={style_file}",
            f"data.root={image_folder}",
            f"paths.root_dir={tmp_path}",
            f"paths.output_dir={tmp_path / 'run'}",
            "trainer.max_steps=2",
            *extra,
        ]
    )


@pytest.mark.parametrize(
    "override,expected",
    [
        ("data.root={tmp}/nowhere", "data.root="),
        ("style.image={tmp}/missing.jpg", "style.image="),
        ("loss_net.weights={tmp}/vgg.pth", "loss_net.weights="),
        ("ckpt_path={tmp}/none.ckpt", "ckpt_path="),
    ],
)
def test_bad_input_fails_fast_with_a_user_error(tmp_path, image_folder, style_file, override, expected):
    cfg = _tiny_cfg(tmp_path, image_folder, style_file, override.format(tmp=tmp_path))
    with pytest.raises(FastStyleError, match=expected):
        train(cfg)


def test_named_style_without_file_or_network(tmp_path, image_folder, style_file, monkeypatch):
    import urllib.request

    def offline(*a, **k):
        raise OSError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    cfg = compose_train(TINY_OVERRIDES + ["style=the_scream", f"paths.root_dir={tmp_path}",
                                          f"paths.output_dir={tmp_path / 'run'}", f"data.root={image_folder}"])
    with pytest.raises(FastStyleError, match="the_scream.jpg is missing and could not be downloaded"):
        train(cfg)


def test_total_loss_falls_on_shared_photos(tmp_path, shared_data):
    """A short run on real photos: the mean total loss of the last steps is well below the first."""
    import pytorch_lightning as pl

    class Record(pl.Callback):
        def __init__(self):
            self.losses = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.losses.append(float(outputs["loss"]))

    from hydra.utils import instantiate

    from fast_style.training.spec import build_train_spec
    from fast_style.training.train import build_module, load_style_tensor

    cfg = compose_train(TINY_OVERRIDES + ["model.width=16", "data.image_size=48", f"data.root={shared_data / 'content'}",
                                          "loss.content_weight=1.0", "loss.style_weight=1.0e4", "loss.tv_weight=1.0", "lr=3e-3",
                                          f"paths.output_dir={tmp_path}"])
    pl.seed_everything(0)
    record = Record()
    module = build_module(build_train_spec(cfg), load_style_tensor(shared_data / "styles" / "starry_night.jpg", size=64))
    trainer = pl.Trainer(max_steps=40, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[record],
                         default_root_dir=tmp_path)
    trainer.fit(module, datamodule=instantiate(cfg.data))
    first, last = sum(record.losses[:5]) / 5, sum(record.losses[-5:]) / 5
    assert len(record.losses) == 40 and last < 0.6 * first, (first, last)


def _train_args(tmp_path, image_folder, style_file, run_dir, *extra):
    return [
        *TINY_OVERRIDES,
        "style=custom",
        "style.name=tiny_style",
        f"style.image={style_file}",
        f"data.root={image_folder}",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
        "callbacks.model_checkpoint.every_n_train_steps=2",
        "callbacks.style_samples.every_n_steps=1",
        "trainer.log_every_n_steps=1",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.heavy  # make test-all: one of the slowest train.py runs (~30 s on 2 cores)
def test_train_py_end_to_end_then_resume(tmp_path, image_folder, style_file):
    first = run_entry("train.py", *_train_args(tmp_path, image_folder, style_file, tmp_path / "run1", "trainer.max_steps=4"),
                      cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    last = tmp_path / "run1" / "checkpoints" / "last.ckpt"
    assert last.is_file() and list((tmp_path / "run1" / "checkpoints").glob("step_*.ckpt"))
    model = tmp_path / "checkpoints" / "tiny_style.safetensors"
    with safe_open(str(model), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["style_name"] == "tiny_style" and meta["steps"] == "4" and meta["loss_net"] == "random(seed=0)"
    assert json.loads(meta["loss_net_config"])["arch"] == "vgg16"
    assert list((tmp_path / "run1" / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "run1" / "samples" / "step_0000004.png").is_file()
    assert "Training finished" in first.stdout
    # the default objective: the held-out loss, printed as the value train.py returns, in objective.json
    record = json.loads((tmp_path / "run1" / "objective.json").read_text())
    assert record["kind"] == "heldout" and record["step"] == 4 and len(record["photos"]) == 2
    assert f"objective     {record['value']}" in first.stdout and record["value"] == record["terms"]["total"] > 0
    chosen = "trainer.precision=bf16-mixed" if native_bf16(torch.device("cpu")) else "trainer.precision=32-true"
    assert "fast path: CPU" in first.stdout + first.stderr and chosen in first.stdout + first.stderr
    curve = run_entry("scripts/loss_curve.py", f"run_dir={tmp_path / 'run1'}", cwd=tmp_path)
    assert curve.returncode == 0, curve.stderr
    assert "total:" in curve.stdout and "| step |" in curve.stdout, curve.stderr
    # the loss network is not stored in the checkpoint; the style Grams are
    state = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    assert not [k for k in state if k.startswith("loss.loss_net.")] and "loss.style_grams.relu4_3" in state

    second = run_entry("train.py", *_train_args(tmp_path, image_folder, style_file, tmp_path / "run2",
                                                "trainer.max_steps=6", f"ckpt_path={last}", "objective=train_total"),
                       cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    cheap = json.loads((tmp_path / "run2" / "objective.json").read_text())
    _, _, curves = tensorboard_hparams(tmp_path / "run2" / "tensorboard")
    assert cheap["kind"] == "train_total" and "photos" not in cheap  # the last logged total, nothing computed
    assert curves["train/total"][-1][0] == 5 and cheap["value"] == pytest.approx(curves["train/total"][-1][1], rel=1e-6)
    samples = sorted(p.name for p in (tmp_path / "run2" / "samples").glob("*.png"))
    assert samples == ["step_0000005.png", "step_0000006.png"]  # continued at step 4, did not restart
    assert torch.load(tmp_path / "run2" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    assert (tmp_path / "checkpoints" / "tiny_style-1.safetensors").is_file()  # the first model was kept
    assert model.is_file()


@pytest.mark.slow
@pytest.mark.heavy  # make test-all: one of the slowest train.py runs (~30 s on 2 cores)
def test_export_script_writes_a_style_model(tmp_path, image_folder, style_file):
    run = run_entry("train.py", *_train_args(tmp_path, image_folder, style_file, tmp_path / "run", "trainer.max_steps=2",
                                             "callbacks.style_samples.every_n_steps=0", "objective=none"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    # objective=none: nothing computed, nothing written, nothing returned
    assert not (tmp_path / "run" / "objective.json").exists() and "objective" not in run.stdout
    finished = json.loads((tmp_path / "run" / "finished.json").read_text())
    assert "objective" not in finished and finished["steps_per_s"] > 0 and finished["global_step"] == 2
    assert finished["seconds"] > 0 and finished["paintings"] == [str(style_file.resolve())]
    out = tmp_path / "exported.safetensors"
    result = run_entry("scripts/export.py", f"ckpt={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", f"output={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    from fast_style.io.model_files import open_model

    exported, original = open_model(out), open_model(tmp_path / "checkpoints" / "tiny_style.safetensors")
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(exported.network(x), original.network(x))
    assert exported.metadata.style_name == "tiny_style" and exported.metadata.steps == original.metadata.steps == 2
    assert exported.metadata.loss == original.metadata.loss and exported.metadata.loss_net == "random(seed=0)"
    again = run_entry("scripts/export.py", f"ckpt={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", f"output={out}", cwd=tmp_path)
    assert again.returncode == 0 and (tmp_path / "exported-1.safetensors").is_file()
    bad = run_entry("scripts/export.py", f"ckpt={tmp_path / 'missing.ckpt'}", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {tmp_path / 'missing.ckpt'}: no such checkpoint file"


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,expected",
    [
        (["style=custom", "style.image={style}", "data.root={tmp}/nowhere"], "error: data.root={tmp}/nowhere: folder does not exist"),
        (["style=nope"], "Could not find 'style/nope'"),
        (["style=custom"], "error: style.image must be set"),
    ],
)
def test_train_py_bad_input_is_one_clear_message(tmp_path, image_folder, style_file, args, expected):
    args = [a.format(tmp=tmp_path, style=style_file) for a in args]
    result = run_entry("train.py", *TINY_OVERRIDES, f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}",
                       f"data.root={image_folder}", *args, cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert expected.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr
