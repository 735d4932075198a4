"""Real SLURM jobs through the project's own commands, on the one-node cluster of conftest.

Each test submits with ``hydra/launcher=slurm`` exactly as a user would (tiny settings,
random loss network) and checks the run folders, the SLURM logs and what slurmctld
says about the jobs (``scontrol show job``: state, restarts, tasks).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO, TINY_LOSS, TINY_OVERRIDES, run_entry

from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import save_style_model
from fast_style.nn.transformer import TransformerNet

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SUBMITTED = re.compile(r"SLURM job (\d+) ")


def _train_args(tmp_path: Path, shared_data: Path, *extra: str) -> list[str]:
    return ["-m", "hydra/launcher=slurm", *TINY_OVERRIDES, f"data.root={shared_data / 'content'}",
            f"paths.style_dir={shared_data / 'styles'}", f"paths.root_dir={tmp_path}", *extra]


def _submit(slurm, script: str, *args: str, cwd: Path, timeout: float = 300):
    run = run_entry(script, *args, cwd=cwd, timeout=timeout, env=slurm.env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return run, SUBMITTED.findall(run.stdout)


def _run_folders(tmp_path: Path) -> list[Path]:
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    return sorted(p for p in sweep.iterdir() if p.is_dir())


def _job_log(run_folder: Path, job_id: str, task: int = 0) -> str:
    return (run_folder / ".submitit" / job_id / f"{job_id}_{task}_log.out").read_text()


def _resumed_steps(log: str) -> list[int]:
    return [int(m) for m in re.findall(r"training from step (\d+) to", log)]


def test_sweep_submits_one_cpu_job_per_style_and_each_run_folder_is_complete(slurm, tmp_path, shared_data):
    run, job_ids = _submit(slurm, "train.py", *_train_args(tmp_path, shared_data, "style=starry_night,the_scream",
                                                           "trainer.max_steps=2"), cwd=tmp_path)
    assert len(set(job_ids)) == 2
    folders = _run_folders(tmp_path)
    assert [f.name for f in folders] == ["0_starry_night", "1_the_scream"]
    for folder, job_id, style in zip(folders, job_ids, ["starry_night", "the_scream"], strict=True):
        assert (folder / "checkpoints" / "last.ckpt").is_file()
        assert (folder / "finished.json").is_file()
        assert (folder / f"{style}.safetensors").is_file()
        assert "Training finished" in _job_log(folder, job_id)
        assert (folder / ".submitit" / job_id / f"{job_id}_0_log.err").is_file()
        job = slurm.finished_job(job_id)
        assert job["JobState"] == "COMPLETED"
        # a CPU job asks for no GPU and one CPU per task (no loader workers here)
        assert "gpu" not in job.get("TresPerNode", "") and "gres/gpu" not in job.get("ReqTRES", "")
        assert job["NumCPUs"] == "1"


def test_two_task_ddp_job_ranks_are_started_by_slurm(slurm, tmp_path, shared_data):
    run, (job_id,) = _submit(slurm, "train.py", *_train_args(
        tmp_path, shared_data, "style=udnie", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.precision=32-true", "data.batch_size=1", "trainer.max_steps=2"), cwd=tmp_path)
    assert slurm.finished_job(job_id)["NumTasks"] == "2"
    (folder,) = _run_folders(tmp_path)
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["last.ckpt"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["udnie.safetensors"]
    rank1 = _job_log(folder, job_id, task=1) + (folder / ".submitit" / job_id / f"{job_id}_1_log.err").read_text()
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in rank1
    assert "1 per device x 2 processes = 2 per step" in (folder / "train.log").read_text()
    assert (folder / "train.log").read_text().count("Training finished") <= 1


def test_two_task_stylize_job_writes_each_image_once(slurm, tmp_path, image_folder):
    torch.manual_seed(0)
    model = save_style_model(TransformerNet(width=8, num_residual=1), tmp_path / "tiny.safetensors",
                             metadata=StyleModelMetadata(style_name="tiny", loss=TINY_LOSS, loss_net="random(seed=0)"))
    out = tmp_path / "out"
    run, (job_id,) = _submit(slurm, "stylize.py", "-m", "hydra/launcher=slurm", f"ckpt={model}", f"input={image_folder}",
                             f"output={out}", "size=32", "devices=2", "accelerator=cpu", cwd=tmp_path)
    assert slurm.finished_job(job_id)["NumTasks"] == "2"
    inputs = sorted(p.relative_to(image_folder).with_suffix("") for p in image_folder.rglob("*.*"))
    outputs = sorted(p.relative_to(out).with_suffix("") for p in out.rglob("*.*"))
    assert len(outputs) == len(inputs) == 5
    (logs,) = (tmp_path / "logs" / "stylize").glob("*/0/.submitit/" + job_id)
    # the summed counts of both ranks: 5 written in all, so no image was written twice
    assert "done 5, skipped 0, failed 0" in (logs / f"{job_id}_0_log.out").read_text()
    assert (logs / f"{job_id}_1_log.out").is_file()


def test_requeued_job_resumes_from_last_ckpt_and_a_finished_job_is_not_retrained(slurm, tmp_path, shared_data):
    args = _train_args(tmp_path, shared_data, "style=great_wave", "trainer.max_steps=400",
                       "callbacks.model_checkpoint.every_n_train_steps=10")
    submitter = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=tmp_path, env=slurm.env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("logs/train/multiruns/*/0_great_wave/checkpoints/step_*.ckpt")):
            assert time.monotonic() < deadline and submitter.poll() is None, "no periodic checkpoint"
            time.sleep(0.2)
        (job_id,) = slurm.queue()
        slurm.sh("scontrol", "requeue", job_id)
        saved_before = max(int(p.stem.split("_")[1]) for p in tmp_path.glob("logs/train/multiruns/*/*/checkpoints/step_*.ckpt"))
        output, _ = submitter.communicate(timeout=240)
    finally:
        submitter.kill()
    assert submitter.returncode == 0, output[-4000:]
    (folder,) = _run_folders(tmp_path)
    log = _job_log(folder, job_id)
    first, resumed = _resumed_steps(log)
    stopped = int(re.search(r"stopped by SIGTERM at step (\d+)", log).group(1))
    assert first == 0 and resumed == stopped and resumed >= saved_before  # nothing lost but the step in flight
    assert f"{job_id}" in output
    job = slurm.finished_job(job_id, restarts=1)
    assert (job["JobState"], job["Restarts"]) == ("COMPLETED", "1")
    finished = (folder / "finished.json").read_text()
    assert '"global_step": 400' in finished

    last_ckpt = folder / "checkpoints" / "last.ckpt"
    before = last_ckpt.stat().st_mtime_ns
    slurm.sh("scontrol", "requeue", job_id)  # a finished job, requeued
    assert slurm.finished_job(job_id, restarts=2)["JobState"] == "COMPLETED"
    log = _job_log(folder, job_id)
    assert "Already finished" in log and len(_resumed_steps(log)) == 2
    assert last_ckpt.stat().st_mtime_ns == before


def test_time_limit_saves_requeues_exactly_once_and_finishes(slurm, tmp_path, shared_data):
    # SLURM signals (USR2) about 60 s before the 3 min limit, give or take its 30 s check
    # period; 120 s of training in all cannot fit before that, but the rest fits in the
    # requeued run long before its own signal. Lightning's Timer state resumes with the job.
    # No periodic checkpoint: whatever the requeued run resumes from was saved at the signal.
    run, (job_id,) = _submit(slurm, "train.py", *_train_args(
        tmp_path, shared_data, "style=shipwreck", "trainer.max_steps=100000000", "+trainer.max_time=00:00:02:00",
        "callbacks.model_checkpoint.every_n_train_steps=100000000", "hydra.launcher.timeout_min=3",
        "hydra.launcher.signal_delay_s=60"), cwd=tmp_path, timeout=480)
    (folder,) = _run_folders(tmp_path)
    log = _job_log(folder, job_id)
    assert log.count("Caught signal SIGUSR2") == 1 and "this job is timed-out" in log
    assert log.count("Requeued job") == 1
    stopped = int(re.search(r"stopped by exit\(-1\) at step (\d+)", log).group(1))
    first, resumed = _resumed_steps(log)
    assert first == 0 and resumed == stopped > 0
    job = slurm.finished_job(job_id, restarts=1)
    assert (job["JobState"], job["Restarts"]) == ("COMPLETED", "1")
    assert (folder / "finished.json").is_file() and (folder / "shipwreck.safetensors").is_file()
