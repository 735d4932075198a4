"""``hydra/sweeper=optuna_trials``: hydra-optuna-sweeper's Optuna sweeper with a record of every trial.

The study itself is hydra-optuna-sweeper's (every ``hydra.sweeper`` option of
``hydra/sweeper=optuna``: sampler, direction, n_trials, n_jobs, max_failure_rate, params),
which at the end logs the best trial's parameters and value and writes them to
``<sweep folder>/optimization_results.yaml``. Three additions:

1. ``<sweep folder>/trials.yaml``: each trial as the sweeper received it from the launcher
   (``job``: its ``hydra.job.num``, also the trial's number in a new study; ``params``, the
   values it was given; ``state``, COMPLETE or FAIL; ``value``, the float the sweeper told the
   study, or ``error``; ``run_dir``), rewritten after every batch, so a sweep that stops
   keeps what it did. The study's in-memory storage is gone when the sweep ends, and
   ``hydra.sweeper.storage`` (sqlite) does not work with optuna 2.10 under SQLAlchemy 2.
2. One printed line per finished trial, and at the end the best trial's run folder.
3. A trial whose ``train.py`` stops with a user error (``error: ...``, exit 2) is a failed
   trial (:class:`TrialFailed`, carrying that line) instead of an exit of the whole sweep
   process (Hydra's local launcher runs the trials in that process). The sweeper then marks
   it FAIL and, past ``max_failure_rate`` (default 0), ends the sweep with that line once
   the batch is in. Other exits (SIGTERM's 143, submitit's requeue) are left as they are.

Hydra imports every module under ``hydra_plugins`` at start-up: nothing heavy here at
module level, and without hydra-optuna-sweeper the plugin only fails when used.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as _OptunaSweeper
except ImportError:  # pragma: no cover - exercised only without the [optuna] extra
    from hydra.plugins.sweeper import Sweeper as _OptunaSweeper

log = logging.getLogger(__name__)

TRIALS_FILE = "trials.yaml"
USER_ERROR = 2  # fast_style.cli.USER_ERROR (not imported here: the module stays light)


class TrialFailed(CompactHydraException):
    """A trial that stopped with a user error; Hydra prints it as one line."""


class FailOnUserError:
    """The task function, with a user error's exit (status 2) raised as :class:`TrialFailed`
    naming the job, its run folder and the error's line; any other exit passes unchanged."""

    def __init__(self, task_function: Any) -> None:
        self.task_function = task_function

    def __call__(self, cfg: Any) -> Any:
        try:
            return self.task_function(cfg)
        except SystemExit as exc:
            if exc.code != USER_ERROR:
                raise
            from hydra.core.hydra_config import HydraConfig

            cause = exc.__context__  # report_user_errors exits while handling the FastStyleError
            why = str(cause).strip() if cause is not None else f"exit status {exc.code}"
            where = ""
            if HydraConfig.initialized():
                hydra_cfg = HydraConfig.get()
                where = f"job {hydra_cfg.job.num} ({hydra_cfg.runtime.output_dir}): "
            raise TrialFailed(f"{where}{why}") from None


class RecordingLauncher:
    """A launcher that hands every job to ``launcher`` and keeps each JobReturn's
    :func:`trial_record` in ``trials`` (then rewrites ``trials.yaml`` and prints a line each)."""

    def __init__(self, launcher: Any, *, sweeper: OptunaSweeper) -> None:
        self.launcher = launcher
        self.sweeper = sweeper

    def __getattr__(self, name: str) -> Any:
        return getattr(self.launcher, name)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        returns = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        for num, (overrides, ret) in enumerate(zip(job_overrides, returns, strict=True), start=initial_job_idx):
            record = trial_record(num, list(overrides), ret, run_dir=self.sweeper.run_dir, swept=self.sweeper.swept)
            self.sweeper.trials.append(record)
            print(trial_line(record), flush=True)
        self.sweeper.write_trials()
        return returns


def trial_record(num: int, overrides: list[str], ret: JobReturn, *, run_dir: Any = None,
                 swept: set[str] | None = None) -> dict[str, Any]:
    """What the sweeper made of job ``num``'s return ``ret``: ``job``, ``params`` ({key: value}
    as Hydra parses ``overrides``, the ``swept`` keys only when given), ``state`` (COMPLETE: the return is a float; FAIL), ``value``,
    ``error`` (FAIL's reason, one line) and ``run_dir`` (from the job's Hydra config, else
    ``run_dir(num, overrides)``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = {o.get_key_element(): o.value() for o in OverridesParser.create().parse_overrides(overrides)
              if swept is None or o.get_key_element() in swept}
    value: float | None = None
    error = None
    try:
        returned = ret.return_value  # a failed job's raises its error
    except Exception as exc:  # noqa: BLE001 - any error of the job is the trial's reason
        lines = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[-1] if lines else ''}".rstrip(": ")
    else:
        try:
            value = float(returned)
        except (TypeError, ValueError):
            error = f"returned {returned!r}, not a number (objective=none?)"
        else:
            error = "returned nan" if math.isnan(value) else None
    folder = None
    if ret.hydra_cfg is not None:
        folder = str(ret.hydra_cfg.hydra.runtime.output_dir)
    elif run_dir is not None:
        folder = run_dir(num, overrides)
    return {"job": num, "params": params, "state": "FAIL" if error else "COMPLETE",
            "value": None if error else value, "error": error, "run_dir": folder}


def trial_line(record: dict[str, Any]) -> str:
    """``trial <job>: <key=value ...> -> <value>`` (or ``FAILED: <reason>``)."""
    params = " ".join(f"{key}={value}" for key, value in record["params"].items())
    outcome = f"{record['value']:.6g}" if record["state"] == "COMPLETE" else f"FAILED: {record['error']}"
    return f"trial {record['job']}: {params} -> {outcome}"


def best_trial(trials: list[dict[str, Any]], *, maximize: bool = False) -> dict[str, Any] | None:
    """The first completed trial of the lowest (``maximize``: highest) value, or None."""
    done = [t for t in trials if t["state"] == "COMPLETE"]
    if not done:
        return None
    return (max if maximize else min)(done, key=lambda t: t["value"])


class OptunaSweeper(_OptunaSweeper):
    """hydra-optuna-sweeper's sweeper with ``trials.yaml``, a line per trial and user errors as
    failed trials (module docstring)."""

    def __init__(self, **params: Any) -> None:
        if _OptunaSweeper.__module__.startswith("hydra.plugins"):
            raise ImportError("hydra/sweeper=optuna_trials needs hydra-optuna-sweeper: pip install -e '.[optuna]'")
        super().__init__(**params)
        self.direction = params.get("direction")
        self.trials: list[dict[str, Any]] = []
        self.swept: set[str] | None = None
        self.config = None
        self.hydra_context = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        super().setup(hydra_context=hydra_context, task_function=FailOnUserError(task_function), config=config)
        self.config, self.hydra_context = config, hydra_context
        self.sweeper.launcher = RecordingLauncher(self.sweeper.launcher, sweeper=self)

    @property
    def sweep_dir(self) -> Path:
        return Path(str(self.config.hydra.sweep.dir))

    def run_dir(self, num: int, overrides: list[str]) -> str | None:
        """Job ``num``'s run folder as its composed config names it (for a return without one)."""
        from omegaconf import open_dict

        try:
            job_cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(job_cfg.hydra.job):
                job_cfg.hydra.job.num = num
            return str(self.sweep_dir / str(job_cfg.hydra.sweep.subdir))
        except Exception:  # noqa: BLE001 - the folder is a convenience; the record stands without it
            return None

    def write_trials(self) -> Path:
        """``<sweep folder>/trials.yaml`` (module docstring), written atomically."""
        import yaml

        from fast_style.io.files import atomic_write_text

        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        direction = str(getattr(self.direction, "name", self.direction) or "minimize")
        text = yaml.safe_dump({"study": self.config.hydra.sweeper.get("study_name"), "direction": direction,
                               "trials": self.trials}, sort_keys=False)
        return atomic_write_text(self.sweep_dir / TRIALS_FILE, text)

    def sweep(self, arguments: list[str]) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        # the search space: hydra.sweeper.params and the command line's sweeps, less its fixed values
        given = OverridesParser.create().parse_overrides(list(arguments))
        fixed = {o.get_key_element() for o in given if not o.is_sweep_override()}
        self.swept = ({str(k) for k in (self.config.hydra.sweeper.get("params") or {})}
                      | {o.get_key_element() for o in given if o.is_sweep_override()}) - fixed
        try:
            return super().sweep(arguments)
        finally:
            if self.trials:
                path = self.write_trials()
                best = best_trial(self.trials, maximize=str(self.direction).endswith("maximize"))
                if best is not None:
                    print(f"best trial: {best['job']} ({best['value']:.6g}), run folder {best['run_dir']}; "
                          f"every trial in {path}", flush=True)
