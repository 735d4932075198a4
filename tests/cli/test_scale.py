"""Scaling out: DDP on CPU (gloo), local submitit sweeps, requeue-safe resume."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import REPO, TINY_OVERRIDES, compose_train, run_entry, tensorboard_hparams


def test_slurm_launcher_config_composes_and_leaves_resources_to_the_job():
    cfg = compose_train(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.fast_style_slurm.launcher.SlurmLauncher"
    assert launcher.partition == "gpu" and launcher.max_num_timeout >= 1
    # null: derived from each job's config at submission (fast_style.slurm.slurm_resources)
    assert [launcher[k] for k in ("nodes", "tasks_per_node", "gpus_per_node", "cpus_per_task", "mem_gb")] == [None] * 5


def test_ddp_trainer_builds_a_ddp_trainer_over_the_devices_asked_for(tmp_path):
    """trainer=ddp instantiates a Trainer with the DDP strategy over trainer.devices (here two
    CPU processes), the precision the device allows chosen by the spec."""
    from hydra.utils import instantiate
    from pytorch_lightning.strategies import DDPStrategy

    from fast_style.training.spec import build_train_spec

    spec = build_train_spec(compose_train(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                                       f"paths.output_dir={tmp_path}"]))
    trainer = instantiate(spec.trainer, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.num_devices == 2 and trainer.world_size == 2
    assert spec.trainer["precision"] in ("bf16-mixed", "32-true")


def _args(tmp_path, image_folder, style_file, name="scale"):
    return [*TINY_OVERRIDES, "style=custom", f"style.name={name}", f"style.image={style_file}",
            f"data.root={image_folder}", f"paths.root_dir={tmp_path}", "data.batch_size=1"]


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (12-40 s)
@pytest.mark.slow
def test_ddp_two_cpu_processes_write_one_checkpoint_and_one_model(tmp_path, image_folder, style_file):
    run = run_entry("train.py", *_args(tmp_path, image_folder, style_file), "trainer=ddp", "trainer.accelerator=cpu",
                    "trainer.devices=2", "trainer.precision=32-true", "trainer.max_steps=2",
                    f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["last.ckpt"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["scale.safetensors"]
    assert run.stdout.count("Training finished") == 1
    # the objective on rank 0 alone: one objective.json, printed once
    assert json.loads((tmp_path / "run" / "objective.json").read_text())["kind"] == "heldout"
    assert run.stdout.count("  objective     ") == 1
    log = (tmp_path / "run" / "train.log").read_text()
    assert "1 per device x 2 processes = 2 per step" in log


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (12-40 s)
@pytest.mark.slow
def test_local_sweep_runs_each_job_in_its_own_folder(tmp_path, image_folder, style_file):
    sweep = tmp_path / "sweep"
    run = run_entry("train.py", "-m", *_args(tmp_path, image_folder, style_file, name="alpha,beta"),
                    "trainer.max_steps=2", "hydra/launcher=local", f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    for job in ["0_alpha", "1_beta"]:
        folder = sweep / job
        assert (folder / "checkpoints" / "last.ckpt").is_file(), job
        assert (folder / f"{job[2:]}.safetensors").is_file() and (folder / "finished.json").is_file()
        assert list((folder / "tensorboard").glob("events.*"))
        # each job's objective, and its hparams with the final metrics for TensorBoard's HPARAMS tab
        record = json.loads((folder / "objective.json").read_text())
        params, metrics, curves = tensorboard_hparams(folder / "tensorboard")
        assert params["style.name"] == job[2:] and params["trainer.max_steps"] == 2 and "final/objective" in metrics
        assert curves["final/objective"][-1][1] == pytest.approx(record["value"], rel=1e-6)
    assert (sweep / "multirun.yaml").is_file()


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (12-40 s)
@pytest.mark.slow
def test_killed_run_resumes_in_its_folder_and_finished_run_is_not_retrained(tmp_path, image_folder, style_file):
    run_dir = tmp_path / "run"
    args = [*_args(tmp_path, image_folder, style_file), f"hydra.run.dir={run_dir}",
            "callbacks.model_checkpoint.every_n_train_steps=2", "callbacks.style_samples.every_n_steps=0"]
    last = run_dir / "checkpoints" / "last.ckpt"
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args, "trainer.max_steps=100000",
                                "trainer.max_epochs=-1"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while not last.is_file() and time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert step >= 2

    resumed = run_entry("train.py", *args, f"trainer.max_steps={step + 2}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from this run folder's" in (run_dir / "train.log").read_text()
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == step + 2

    again = run_entry("train.py", *args, f"trainer.max_steps={step + 2}", cwd=tmp_path)
    assert again.returncode == 0 and "Already finished" in again.stdout
