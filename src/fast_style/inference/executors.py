"""Stylizing a folder on several devices or processes with Lightning's predict loop.

``python stylize.py ckpt=... input=<folder> output=<folder> devices=N`` starts N
processes (one per GPU, or N CPU processes with gloo) through Lightning's DDP
launcher. Every process plans the same sorted job list; process ``r`` of ``N`` takes
jobs ``r, r + N, r + 2N, ...`` (no padding, unlike DistributedSampler, so no image is
stylized twice), checks its own targets, stylizes and writes them with a
:class:`~pytorch_lightning.callbacks.BasePredictionWriter` as each batch finishes.
Targets that already exist are skipped, so a re-run only does what is missing. At the
end the counts of all processes are summed and rank zero prints the summary.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset, Sampler

from fast_style.errors import FastStyleError
from fast_style.io.images import open_rgb_alpha, pil_to_tensor


class Shard(Sampler[int]):
    """Indices ``rank, rank + world, ...`` of ``length`` items: disjoint and complete."""

    def __init__(self, length: int, *, rank: int, world: int):
        self.indices = list(range(rank, length, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class JobImages(Dataset):
    """Loads the photo of each job; a failure becomes an ``error`` entry, not an exception."""

    def __init__(self, jobs: list, *, size: int | None, scale: float | None, overwrite: bool):
        self.jobs, self.size, self.scale, self.overwrite = jobs, size, scale, overwrite

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from fast_style.inference.pipeline import _precheck, resized

        job = self.jobs[index]
        why = _precheck(job, overwrite=self.overwrite)
        if why is not None:
            return {"job": job, "skip": why}
        try:
            rgb, alpha = open_rgb_alpha(job.source)
            photo = pil_to_tensor(resized(rgb, size=self.size, scale=self.scale))
        except Exception as exc:  # noqa: BLE001 - reported and counted, never fatal
            message = str(exc) if isinstance(exc, FastStyleError) else f"{job.source}: {type(exc).__name__}: {exc}"
            return {"job": job, "error": message}
        return {"job": job, "photo": photo, "alpha": alpha}


class PredictStylizer(pl.LightningModule):
    """Wraps the transform net; builds a :class:`fast_style.inference.Stylizer` on its device."""

    def __init__(self, *, model: torch.nn.Module, cfg: Any):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.stylizer = None

    def on_predict_start(self) -> None:
        from omegaconf import OmegaConf

        from fast_style.inference.pipeline import build_stylizer

        cfg = OmegaConf.merge(self.cfg, {"device": str(self.device.type)})
        self.stylizer = build_stylizer(cfg, self.model)

    def transfer_batch_to_device(self, batch: list[dict[str, Any]], device: torch.device, dataloader_idx: int):
        return batch  # jobs are plain records; the Stylizer moves each photo itself

    def predict_step(self, batch: list[dict[str, Any]], batch_idx: int) -> list[dict[str, Any]]:
        from fast_style.inference.pipeline import finish

        for item in batch:
            if "photo" not in item:
                continue
            try:
                out = self.stylizer(item["photo"])[0].cpu()
                item["result"] = finish(out, item["photo"], keep_colour=bool(self.cfg.preserve_color),
                                        strength=float(self.cfg.strength))
            except Exception as exc:  # noqa: BLE001
                item["error"] = f"{item['job'].source}: {type(exc).__name__}: {exc}"
        return batch


class ImageWriter(BasePredictionWriter):
    """Writes each result as its batch finishes; counts done / skipped / failed."""

    def __init__(self, *, quality: int):
        super().__init__(write_interval="batch")
        self.quality = quality
        self.counts = torch.zeros(3, dtype=torch.long)  # done, skipped, failed

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        from fast_style.inference.pipeline import write_output

        for item in prediction:
            if "skip" in item:
                self.counts[1] += 1
                continue
            if "result" in item:
                try:
                    write_output(item["result"], item["alpha"], item["job"].target, quality=self.quality)
                    self.counts[0] += 1
                    continue
                except Exception as exc:  # noqa: BLE001
                    item["error"] = f"{item['job'].target}: {type(exc).__name__}: {exc}"
            print(f"failed: {item['error']}", file=sys.stderr, flush=True)
            self.counts[2] += 1


def stylize_distributed(*, jobs: list, model: torch.nn.Module, cfg: Any) -> tuple[int, int, int]:
    """Stylize ``jobs`` on ``cfg.devices`` processes; returns summed (done, skipped, failed)."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated.*")  # Lightning internals
    for job in jobs:
        job.target.parent.mkdir(parents=True, exist_ok=True)
    writer = ImageWriter(quality=int(cfg.quality))
    trainer = pl.Trainer(
        accelerator=str(cfg.get("accelerator", "auto")),
        devices=int(cfg.devices),
        strategy="ddp",
        logger=False,
        callbacks=[writer],
        use_distributed_sampler=False,
        enable_model_summary=False,
        enable_progress_bar=bool(cfg.progress),
        default_root_dir=".",
    )
    dataset = JobImages(jobs, size=cfg.size, scale=cfg.scale, overwrite=bool(cfg.overwrite))
    loader = DataLoader(
        dataset,
        batch_size=1,
        sampler=Shard(len(dataset), rank=trainer.global_rank, world=trainer.world_size),
        collate_fn=list,
        num_workers=0,
    )
    trainer.predict(PredictStylizer(model=model, cfg=cfg), dataloaders=loader, return_predictions=False)
    counts = trainer.strategy.reduce(writer.counts.to(trainer.strategy.root_device), reduce_op="sum")
    done, skipped, failed = (int(v) for v in counts.cpu())
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # a clean exit for every rank
    if not trainer.is_global_zero:
        sys.exit(1 if writer.counts[2] else 0)
    return done, skipped, failed
