"""Optimising sweeps: ``python train.py -m hparams_search=style_weights`` through Hydra's real Optuna
sweeper (hydra-optuna-sweeper, TPE) with the local launcher and on the one-node SLURM cluster; each
trial's value as the sweeper received it (``trials.yaml``) against its run's ``objective.json``,
the study's best against the trials, and TensorBoard's hparams plugin over the sweep, by HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers import REPO, TINY_OVERRIDES, run_entry

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

SWEPT = ("loss.style_weight", "loss.content_weight", "style.size")


def _sweep_args(root: Path, shared_data: Path, trials: int, jobs: int, *extra: str,
                sizes: str = "choice(32,64)") -> list[str]:
    tiny = [o for o in TINY_OVERRIDES if not o.startswith("style.size=")]  # swept here, among tiny sizes
    return ["-m", "hparams_search=style_weights", *tiny, f"style.size={sizes}",
            f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.n_jobs={jobs}", "trainer.max_steps=2",
            "trainer.log_every_n_steps=1", "callbacks.style_samples.every_n_steps=0",
            f"data.root={shared_data / 'content'}", f"paths.style_dir={shared_data / 'styles'}",
            f"paths.root_dir={root}", *extra]


def _check_trials(sweep: Path, trials: int) -> list[dict]:
    """Each trial COMPLETE, its value the reference total of its run's objective.json; the study's
    best (optimization_results.yaml) the lowest of them; returns the trials."""
    record = yaml.safe_load((sweep / "trials.yaml").read_text())
    assert record["study"] == "style_weights" and record["direction"] == "minimize"
    found = record["trials"]
    assert [t["job"] for t in found] == list(range(trials))
    for trial in found:
        assert trial["state"] == "COMPLETE" and set(trial["params"]) == set(SWEPT), trial
        run = Path(trial["run_dir"])
        assert run.parent == sweep
        objective = json.loads((run / "objective.json").read_text())
        # the swept weights are the run's own; the value is the total under the preset's fixed ones
        assert objective["weights"]["style_weight"] == pytest.approx(trial["params"]["loss.style_weight"], rel=1e-12)
        assert objective["returns"] == "reference" and objective["reference"]["weights"]["style_weight"] == 1e10
        assert trial["value"] == objective["value"] == objective["reference"]["total"]
        assert objective["terms"]["total"] != objective["reference"]["total"]
    assert len({t["value"] for t in found}) == trials  # different trials, different models
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    lowest = min(found, key=lambda t: t["value"])
    assert best["best_value"] == lowest["value"]
    assert best["best_params"] == pytest.approx(lowest["params"], rel=1e-12)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def _hparams_over_http(logdir: Path, runs: int) -> tuple[dict, dict]:
    """TensorBoard on 127.0.0.1 over ``logdir``: (the hparams experiment, its session groups),
    once it lists ``runs`` sessions; stopped afterwards, also on failure."""
    port = _free_port()
    board = subprocess.Popen([str(REPO / ".venv" / "bin" / "tensorboard"), "--logdir", str(logdir), "--host",
                              "127.0.0.1", "--port", str(port), "--reload_interval", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/data/plugin/hparams"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert board.poll() is None, "tensorboard exited"
            try:
                groups = _post(f"{base}/session_groups", {
                    "experimentName": "", "startIndex": 0, "sliceSize": 100, "includeMetrics": True,
                    "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]})
                if len(groups.get("sessionGroups", [])) >= runs:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "tensorboard did not list the sweep's runs in 90 s"
            time.sleep(0.5)
        experiment = _post(f"{base}/experiment", {"experimentName": "", "includeMetrics": True})
        return experiment, groups
    finally:
        board.terminate()
        try:
            board.wait(timeout=20)
        except subprocess.TimeoutExpired:
            board.kill()
            board.wait()


@pytest.mark.slow
@pytest.mark.heavy
def test_a_tpe_sweep_returns_each_runs_reference_total_and_tensorboard_lists_every_run(tmp_path, shared_data):
    run = run_entry("train.py", *_sweep_args(tmp_path, shared_data, 4, 2), cwd=tmp_path, timeout=400)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    found = _check_trials(sweep, 4)
    best = min(found, key=lambda t: t["value"])
    assert f"Best value: {best['value']}" in run.stdout  # the sweeper's own line
    assert f"best trial: {best['job']} " in run.stdout and str(best["run_dir"]) in run.stdout
    assert sum(line.startswith("trial ") for line in run.stdout.splitlines()) == 4

    experiment, groups = _hparams_over_http(sweep, runs=4)
    hparams = {h["name"] for h in experiment["hparamInfos"]}
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert set(SWEPT) | {"lr", "trainer.max_steps", "model", "styles"} <= hparams
    assert {"final/objective", "final/reference_total", "final/train_total", "final/steps_per_s"} <= metrics
    by_run = {}
    for group in groups["sessionGroups"]:
        (session,) = group["sessions"]
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        by_run[session["name"].split("/")[0]] = (group["hparams"], values)
    assert sorted(by_run) == sorted(Path(t["run_dir"]).name for t in found)
    for trial in found:
        params, values = by_run[Path(trial["run_dir"]).name]
        assert values["final/objective"] == pytest.approx(trial["value"], rel=1e-6)
        assert values["final/reference_total"] == pytest.approx(trial["value"], rel=1e-6)
        assert values["final/train_total"] > 0 and values["final/steps_per_s"] > 0
        assert params["loss.style_weight"] == pytest.approx(trial["params"]["loss.style_weight"], rel=1e-6)
        assert params["loss.content_weight"] == pytest.approx(trial["params"]["loss.content_weight"], rel=1e-6)
        assert params["style.size"] == trial["params"]["style.size"]


@pytest.mark.slow
@pytest.mark.heavy  # make test is at its 5-minute budget: test-all runs it
def test_a_trial_that_stops_with_a_user_error_is_a_failed_trial_and_ends_the_sweep_in_one_line(tmp_path, shared_data):
    """style.size=8 is refused before training: that trial FAILs, its batch mate still runs, and
    with max_failure_rate=0 the sweep ends with exit 2 and the trial's error line."""
    run = run_entry("train.py", *_sweep_args(tmp_path, shared_data, 2, 2, sizes="choice(8,64)"), cwd=tmp_path,
                    timeout=300)
    assert run.returncode == 2, (run.stdout + run.stderr)[-4000:]
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    trials = {t["params"]["style.size"]: t for t in yaml.safe_load((sweep / "trials.yaml").read_text())["trials"]}
    assert trials[8]["state"] == "FAIL" and "style.size=8: must be at least 32 px" in trials[8]["error"]
    assert trials[64]["state"] == "COMPLETE" and (Path(trials[64]["run_dir"]) / "objective.json").is_file()
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: job ") and "style.size=8: must be at least 32 px" in last
    assert "Traceback" not in run.stderr and not (sweep / "optimization_results.yaml").exists()


@pytest.mark.slurm
@pytest.mark.slow
def test_a_two_trial_sweep_on_slurm_returns_each_runs_reference_total(slurm, tmp_path, shared_data):
    run = run_entry("train.py", *_sweep_args(tmp_path, shared_data, 2, 2, "hydra/launcher=slurm"),
                    cwd=tmp_path, timeout=400, env=slurm.env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert run.stdout.count(": SLURM job ") == 2  # one sbatch job per trial
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    for trial in _check_trials(sweep, 2):
        assert list((Path(trial["run_dir"]) / ".submitit").iterdir())  # it ran as a SLURM job
