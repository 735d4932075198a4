"""``hydra/launcher=slurm``: hydra-submitit-launcher's SLURM launcher with two changes.

1. Resources come from each job's own config (:func:`fast_style.slurm.slurm_resources`):
   a CPU job asks for no GPU, a DDP job gets one task per device; values set under
   ``hydra.launcher`` win.
2. Each run is its own sbatch submission whose SLURM logs go to ``<run folder>/.submitit/<job id>/``,
   so a run folder holds everything about its run. All jobs are submitted before the
   launcher waits for any, and each job id is logged at submission.

Requeueing belongs to submitit: on SLURM's warning signal before the time limit it
resubmits the same job (``max_num_timeout`` times), which resumes from its
``last.ckpt``; Lightning's own SLURM auto-requeue is switched off in training.

Hydra imports every module under ``hydra_plugins`` at start-up, so this one imports
nothing heavy at module level and works (with a clear error on use) without submitit.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf, open_dict

try:
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
        SlurmLauncher as _SubmititSlurmLauncher,
    )
except ImportError:  # pragma: no cover - exercised only without the [slurm] extra
    from hydra.plugins.launcher import Launcher as _SubmititSlurmLauncher

    BaseQueueConf = None

log = logging.getLogger(__name__)

# A job that exits with this status was stopped by SIGTERM (pre-emption, scontrol requeue,
# scancel): it leaves no result, so the submitting side waits for the requeued run.
SIGTERM_EXIT = 128 + 15
# how long a job may be gone from squeue without a result before it counts as lost
LOST_AFTER_S = 30.0

# hydra.launcher keys that configure the executor rather than sbatch
EXECUTOR_KEYS = ("submitit_folder", "max_num_timeout")  # the folder is per run here


class SlurmJobError(CompactHydraException):
    """A job SLURM refused, cannot start or lost; Hydra prints it as one line."""


class SlurmLauncher(_SubmititSlurmLauncher):
    """One sbatch job per run, resources from the run's config; see the module docstring."""

    def __init__(self, **params: Any) -> None:
        if BaseQueueConf is None:
            raise ImportError("hydra/launcher=slurm needs hydra-submitit-launcher: pip install -e '.[slurm]'")
        super().__init__(**params)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        from fast_style.slurm import partition_has_gpus, slurm_resources, submission_error

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("SLURM sweep folder: %s", sweep_dir)
        jobs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            job_cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(job_cfg.hydra.job):
                job_cfg.hydra.job.num = idx
            params: dict[str, Any] = OmegaConf.to_container(job_cfg.hydra.launcher, resolve=True)
            params.pop("_target_", None)
            resources = slurm_resources(job_cfg, launcher=params,
                                        gpus_available=functools.partial(partition_has_gpus, params.get("partition")))
            params.update(resources)
            run_dir = sweep_dir / str(job_cfg.hydra.sweep.subdir)
            executor = submitit.AutoExecutor(cluster="slurm", folder=run_dir / ".submitit" / "%j",
                                             slurm_max_num_timeout=params["max_num_timeout"])
            executor.update_parameters(**_executor_parameters(params))
            try:
                job = executor.submit(self, list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}",
                                      Singleton.get_state())
            except submitit.core.utils.FailedJobError as exc:
                raise SlurmJobError(submission_error(exc, resources=resources)) from None
            # printed, not logged: stylize.py runs with Hydra's logging off
            print(f"#{idx} {' '.join(filter_overrides(overrides))}: SLURM job {job.job_id} "
                  f"({', '.join(f'{k}={v}' for k, v in resources.items() if v is not None)}), "
                  f"logs in {run_dir / '.submitit' / str(job.job_id)}", flush=True)
            jobs.append((job, list(overrides)))
        return wait_for(jobs)

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """Runs one job (on every task). ``sys.exit`` in the job is turned into a result,
        so that the submitting side is told instead of waiting for one: status 0 is a
        completed job (e.g. a non-zero DDP rank of stylize.py), others a failure. Exits
        that mean "requeued" (submitit's own, and :data:`SIGTERM_EXIT`) stay exits."""
        # submitit logs through its own handler; without this, Hydra's root handler would
        # print each of its lines a second time in the job's log
        logging.getLogger("submitit").propagate = False
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as exc:
            from pytorch_lightning.utilities.exceptions import SIGTERMException

            if exc.code == SIGTERM_EXIT or isinstance(exc, SIGTERMException) or _raised_by_submitit(exc):
                raise
            if exc.code in (0, None):
                return JobReturn(status=JobStatus.COMPLETED)
            raise RuntimeError(f"the job exited with status {exc.code}; its log says why") from None


def wait_for(jobs: list[tuple[Any, list[str]]], *, poll_s: float = 1.0) -> list[JobReturn]:
    """Each (submitit job, overrides)'s JobReturn, waiting for all of them. A job that failed gives a FAILED
    return (Hydra raises it once every job is in). Two cases are reported instead of
    waited for forever (submitit alone waits, on clusters without accounting): a job
    that leaves the queue without a result (killed, cancelled, node lost), and a pending
    job whose reason says it can never start as asked (it is cancelled)."""
    returns: dict[int, JobReturn] = {}
    gone_since: dict[int, float] = {}
    while len(returns) < len(jobs):
        queued = _queued_jobs()
        for n, (job, overrides) in enumerate(jobs):
            if n in returns:
                continue
            reason = (queued or {}).get(str(job.job_id))
            if job.done():
                returns[n] = _job_return(job, overrides)
            elif reason and _never_starts(reason):
                subprocess.run(["scancel", str(job.job_id)], capture_output=True, timeout=60)
                message = (f"SLURM job {job.job_id} can never start as asked (reason {reason}): the partition "
                           f"cannot give what hydra.launcher asks (cpus_per_task, mem_gb, gpus_per_node, "
                           f"timeout_min, nodes); it was cancelled")
                log.error(message)
                returns[n] = JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=SlurmJobError(message))
            elif queued is not None and reason is None:
                first_seen = gone_since.setdefault(n, time.monotonic())
                if time.monotonic() - first_seen > LOST_AFTER_S:
                    message = f"SLURM job {job.job_id} ended without a result (cancelled or killed?): see {job.paths.stderr}"
                    log.error(message)
                    returns[n] = JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=SlurmJobError(message))
            else:
                gone_since.pop(n, None)
        if len(returns) < len(jobs):
            time.sleep(poll_s)
            poll_s = min(poll_s * 1.5, 15.0)
    return [returns[n] for n in range(len(jobs))]


# squeue reasons of a pending job that no amount of waiting changes
NEVER_STARTS = ("PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints",
                "InvalidAccount", "InvalidQOS")


def _never_starts(reason: str) -> bool:
    return reason in NEVER_STARTS or reason.endswith("PerJobLimit")


def _job_return(job: Any, overrides: list[str]) -> JobReturn:
    try:
        value = job.results()[0]
    except Exception as exc:  # the job's own error, pickled by submitit
        log.error("SLURM job %s failed: %s", job.job_id, str(exc).strip().splitlines()[-1:] or exc)
        return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=exc)
    if isinstance(value, JobReturn):
        return value
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=value)


def _queued_jobs() -> dict[str, str] | None:
    """Job id -> squeue's reason (``None`` while running) for every job in the queue
    (pending, running, requeued, completing); None if squeue fails."""
    try:
        done = subprocess.run(["squeue", "-h", "-o", "%i %r"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return {fields[0]: (fields[1] if len(fields) > 1 else "None") for fields in map(str.split, done.stdout.splitlines()) if fields}


def _raised_by_submitit(exc: BaseException) -> bool:
    """Whether the exception was raised in submitit's code (its signal handlers exit
    after requeueing the job; that exit must not become a result)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("submitit")


def _executor_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """hydra.launcher keys -> submitit's: shared ones as they are, the rest ``slurm_``-prefixed."""
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    return {(key if key in shared else f"slurm_{key}"): value
            for key, value in params.items() if key not in EXECUTOR_KEYS}
