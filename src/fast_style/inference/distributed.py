"""Stylizing in several processes (``devices=N``): Lightning's DDP launcher and predict loop.

:func:`run_on_devices` starts N processes (one per GPU, or N CPU processes with gloo).
Every process plans the same sorted job list; process ``r`` of ``N`` takes jobs ``r, r +
N, r + 2N, ...`` (no padding, unlike DistributedSampler, so no image is stylized twice),
reads them in a DataLoader, runs them in same-size groups of up to ``batch_size`` and
writes each result as its batch finishes. Targets that already exist are skipped, so a
re-run only does what is missing. At the end the counts of all processes are summed.
"""

from __future__ import annotations

import sys
import warnings

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset, Sampler

from fast_style.devices import cluster_plugins
from fast_style.errors import FastStyleError
from fast_style.inference.executors import STATUSES, report, size_groups
from fast_style.inference.mixing import StyleChoice
from fast_style.inference.options import StylizeOptions
from fast_style.inference.outcome import Job, Loaded, Outcome, Summary
from fast_style.inference.reading import read
from fast_style.inference.runners.rules import make_runner
from fast_style.inference.writing import run_batch
from fast_style.io.model_files import StyleModel


class Shard(Sampler[int]):
    """Indices ``rank, rank + world, ...`` of ``length`` items: disjoint and complete."""

    def __init__(self, length: int, *, rank: int, world: int):
        self.indices = list(range(rank, length, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class JobPhotos(Dataset):
    """Step 1 of each job (:func:`~fast_style.inference.reading.read`) in a DataLoader."""

    def __init__(self, jobs: list[Job], options: StylizeOptions):
        self.jobs, self.options = jobs, options

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> Loaded | Outcome:
        return read(self.jobs[index], self.options)


def job_loader(jobs: list[Job], options: StylizeOptions, *, rank: int, world: int) -> DataLoader:
    """This rank's share of the jobs, read ``batch_size`` at a time (lists, not collated)."""
    dataset = JobPhotos(jobs, options)
    return DataLoader(dataset, batch_size=int(options.batch_size), sampler=Shard(len(dataset), rank=rank, world=world),
                      collate_fn=list, num_workers=0)


class PredictJobs(pl.LightningModule):
    """Runs steps 2-4 of each photo job (:func:`~fast_style.inference.writing.run_batch`) on each rank's device; the runner is built there
    (with the run's style choice)."""

    def __init__(self, *, model: StyleModel, options: StylizeOptions, styles: StyleChoice | None = None):
        super().__init__()
        self.network = model.network
        self.style_model, self.options, self.styles, self.runner = model, options, styles, None

    def on_predict_start(self) -> None:
        from dataclasses import replace

        self.runner = make_runner(self.style_model, replace(self.options, device=str(self.device)), self.styles)

    def transfer_batch_to_device(self, batch: list, device: torch.device, dataloader_idx: int) -> list:
        return batch  # jobs are plain records; the runner moves each photo itself

    def predict_step(self, batch: list[Loaded | Outcome], batch_idx: int) -> list[Outcome]:
        outcomes = []
        groups = size_groups(batch, batch_size=len(batch) or 1, needs_tiling=self.runner.needs_tiling)
        for group in groups:
            outcomes += [group] if isinstance(group, Outcome) else run_batch(self.runner, group, self.options)
        return outcomes


class OutcomeCounter(BasePredictionWriter):
    """Reports and counts each batch's outcomes as it finishes (done, skipped, failed)."""

    def __init__(self) -> None:
        super().__init__(write_interval="batch")
        self.counts = torch.zeros(len(STATUSES), dtype=torch.long)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        for outcome in prediction:
            report(outcome)
            self.counts[STATUSES.index(outcome.status)] += 1


def run_on_devices(jobs: list[Job], model: StyleModel, options: StylizeOptions,
                   styles: StyleChoice | None = None) -> Summary:
    """Stylize ``jobs`` in ``options.devices`` processes with the style choice ``styles``
    (None: read from the options); returns summed counts (on every rank; ranks other than
    zero exit here)."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated.*")  # Lightning internals
    model.require_network(f"devices={options.devices}")
    videos = [job.source for job in jobs if job.is_clip]
    if videos:
        raise FastStyleError(f"{videos[0]}: devices={options.devices} stylizes photos only; stylize videos with "
                             "devices=1 (one process batches frames already)")
    counter = OutcomeCounter()
    trainer = pl.Trainer(
        accelerator=str(options.accelerator), devices=int(options.devices), strategy="ddp", logger=False,
        callbacks=[counter], use_distributed_sampler=False, enable_model_summary=False,
        enable_progress_bar=bool(options.progress), default_root_dir=".", plugins=cluster_plugins() or None,
    )
    loader = job_loader(jobs, options, rank=trainer.global_rank, world=trainer.world_size)
    trainer.predict(PredictJobs(model=model, options=options, styles=styles), dataloaders=loader, return_predictions=False)
    totals = trainer.strategy.reduce(counter.counts.to(trainer.strategy.root_device), reduce_op="sum")
    done, skipped, failed = (int(v) for v in totals.cpu())
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # a clean exit for every rank
    if not trainer.is_global_zero:
        sys.exit(1 if counter.counts[2] else 0)
    return Summary(totals=(done, skipped, failed))

