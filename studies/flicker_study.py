"""Flicker with and without the temporal term: the video study (issue #14's figure).

    python scripts/flicker_study.py [steps=900] [temporal_weights=[1e6]] [train_experiment=demo]

``train.py`` trains, in subprocesses, one model per weight in ``[0, *temporal_weights]``:
the same experiment, steps and seed, differing only in ``loss.temporal_weight`` (0 is the
per-frame model of today). Then every model is scored on the same held-out photos
(the photos of ``images`` whose file stem is not among the training photos), each resized
and centre-cropped to ``size`` px, with the loss network and painting it was trained with:

- the perceptual loss of y = T(x): content, style, TV and their sum (``total``; the
  temporal term is not part of it), means over the photos;
- the flicker: the temporal warping error of :mod:`fast_style.evaluation.flicker` on a
  ``frames``-frame clip with a known camera move and noise made from each photo, in
  1/255, and the input clip's own, for scale.

For each weight w > 0 the two goals of the issue:

    flicker reduction = flicker(w = 0) / flicker(w) >= 2
    loss ratio        = total(w) / total(w = 0)     <= 1.1

Writes ``study.json`` and ``table.md`` into ``output_dir``. A finished training run is
reused when the study runs again with the same ``output_dir`` (new weights train only
their own model); delete the folder to start over.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fast_style.evaluation.evaluate import loss_net_kwargs, open_trained
from fast_style.evaluation.flicker import flicker
from fast_style.evaluation.optimize import LOSS_KEYS, build_loss
from fast_style.io.images import images_below, square_image
from studies.training_runs import (
    StudyError,
    composed_config,
    style_tensor_of,
    train_in_folder,
    write_report,
)

if TYPE_CHECKING:
    from studies.schemas import FlickerStudyConfig

MAX_FLICKER_RATIO = 0.5
MAX_LOSS_RATIO = 1.1


@dataclass(frozen=True)
class FlickerStudySettings:
    """What every run of the study shares (the keys: :class:`studies.schemas.FlickerStudyConfig`);
    ``project``: the checkout whose train.py the study runs (and where its data.root is)."""

    output_dir: Path
    project: Path
    experiment: str = "demo"
    steps: int = 900
    seed: int = 42
    extra: tuple[str, ...] = ()


def run_name(weight: float) -> str:
    return "per_frame" if weight == 0 else f"temporal_{weight:g}"


def train_model(settings: FlickerStudySettings, weight: float) -> dict[str, Any]:
    """``train.py experiment=<experiment> loss.temporal_weight=<weight>`` for exactly
    ``steps`` steps (the experiment's time limit and after-training check off)."""
    return train_in_folder(settings.output_dir / "runs" / run_name(weight), [
        f"experiment={settings.experiment}", f"loss.temporal_weight={weight:g}", f"seed={settings.seed}",
        "trainer.max_time=null", "check=null", *settings.extra,
    ], project=settings.project, label=run_name(weight), steps=settings.steps)


def held_out_photos(folder: Path, trained_on: Sequence[Path], *, limit: int | None) -> list[Path]:
    """Photos below ``folder`` whose file stem is not a training photo's, sorted, the first ``limit``."""
    if not folder.is_dir():
        raise StudyError(f"images={folder}: not a folder; give a folder of photos the models did not train on")
    stems = {p.stem for p in trained_on}
    photos = [p for p in images_below(folder) if p.stem not in stems]
    if not photos:
        raise StudyError(f"images={folder}: every photo there is also a training photo; give other photos")
    return photos[:limit] if limit else photos


@torch.no_grad()
def score_model(path: str | Path, photos: Sequence[Path], *, style_image: torch.Tensor, size: int,
                frames: int) -> dict[str, Any]:
    """Per photo and as means: the perceptual loss terms of T(x) and the flicker of the
    model at ``path`` (see the module docstring)."""
    trained = open_trained(path)
    network = trained.network.eval()
    net_kwargs, _ = loss_net_kwargs(metadata=trained.metadata, overrides={})
    loss = build_loss(loss=trained.metadata.loss, loss_net=net_kwargs, style_image=style_image,
                      device=torch.device("cpu"))
    per_photo = []
    for photo_path in photos:
        photo = square_image(photo_path, size)[None]
        terms = loss(network(photo).clamp(0, 1), photo)
        per_photo.append({"photo": photo_path.name, **{key: float(terms[key]) for key in LOSS_KEYS},
                          "flicker": flicker(network, photo, frames=frames)})
    means = {key: statistics.fmean(p[key] for p in per_photo) for key in LOSS_KEYS}
    means["flicker"] = statistics.fmean(p["flicker"]["stylized"] for p in per_photo)
    means["flicker_input"] = statistics.fmean(p["flicker"]["input"] for p in per_photo)
    return {"model": str(path), "means": means, "per_photo": per_photo}


def run_study(settings: FlickerStudySettings, *, temporal_weights: Sequence[float], images: Path,
              num_images: int | None, size: int, frames: int) -> dict[str, Any]:
    """Train and score the study's models (see the module docstring); returns the report."""
    weights = sorted({float(w) for w in temporal_weights})
    if not weights or weights[0] <= 0:
        raise StudyError(f"temporal_weights={list(temporal_weights)}: give one or more weights > 0, e.g. [1e6]")
    runs = {weight: train_model(settings, weight) for weight in [0.0, *weights]}
    config = composed_config(runs[0.0])
    photos = held_out_photos(images, images_below(settings.project / str(config["data"]["root"])), limit=num_images)
    style_image = style_tensor_of(config["style"], Path(str(config["paths"]["style_dir"])), project=settings.project)[None]
    scores = {weight: score_model(run["style_model"], photos, style_image=style_image, size=size, frames=frames)
              for weight, run in runs.items()}
    rows = compare({weight: score["means"] for weight, score in scores.items()})
    return {"settings": {k: str(v) for k, v in settings.__dict__.items() if k != "project"}, "size": size, "frames": frames,
            "photos": [p.name for p in photos], "rows": rows, "models": {run_name(w): s["model"] for w, s in scores.items()},
            "per_photo": {run_name(w): s["per_photo"] for w, s in scores.items()}}


def compare(means: dict[float, dict[str, float]]) -> list[dict[str, Any]]:
    """One row per weight (``means[0]`` is the per-frame model): its means, and for w > 0
    ``flicker_reduction``, ``loss_ratio`` and whether both goals are met."""
    base = means[0.0]
    rows = []
    for weight in sorted(means):
        row = {"temporal_weight": weight, **means[weight]}
        if weight > 0:
            row["flicker_reduction"] = base["flicker"] / row["flicker"] if row["flicker"] > 0 else float("inf")
            row["loss_ratio"] = row["total"] / base["total"]
            row["goals_met"] = row["flicker"] <= MAX_FLICKER_RATIO * base["flicker"] and row["loss_ratio"] <= MAX_LOSS_RATIO
        rows.append(row)
    return rows


def table(report: dict[str, Any]) -> str:
    """The report as a markdown table and one line per goal."""
    lines = [f"{len(report['photos'])} held-out photos ({', '.join(report['photos'])}), {report['size']} px; "
             f"flicker on {report['frames']}-frame clips, 1/255 (input clips: "
             f"{report['rows'][0]['flicker_input']:.2f})", "",
             "| temporal_weight | flicker | vs per-frame | content | style | tv | total | vs per-frame |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        reduction = f"{1 / row['flicker_reduction']:.2f}x" if "flicker_reduction" in row else ""
        ratio = f"{row['loss_ratio']:.3f}x" if "loss_ratio" in row else ""
        lines.append(f"| {row['temporal_weight']:g} | {row['flicker']:.2f} | {reduction} | {row['content']:.4g} "
                     f"| {row['style']:.4g} | {row['tv']:.4g} | {row['total']:.4g} | {ratio} |")
    lines.append("")
    for row in report["rows"][1:]:
        verdict = "met" if row["goals_met"] else "not met"
        lines.append(f"temporal_weight={row['temporal_weight']:g}: flicker {row['flicker_reduction']:.2f}x lower "
                     f"(goal >= {1 / MAX_FLICKER_RATIO:g}x), total loss {row['loss_ratio']:.3f}x "
                     f"(goal <= {MAX_LOSS_RATIO:g}x): {verdict}")
    return "\n".join(lines)


def main(config: FlickerStudyConfig, *, project: Path) -> None:
    """scripts/flicker_study.py: the study with ``project``'s train.py, its table printed and
    written to ``output_dir``."""
    output_dir = Path(config.output_dir).resolve()
    settings = FlickerStudySettings(output_dir=output_dir, project=project, experiment=config.train_experiment,
                                    steps=config.steps, seed=config.seed, extra=tuple(config.extra))
    report = run_study(settings, temporal_weights=config.temporal_weights, images=Path(config.images).resolve(),
                       num_images=config.num_images, size=config.size, frames=config.frames)
    print(write_report(report, table(report), output_dir))
    print(f"\nwritten: {output_dir / 'study.json'}, {output_dir / 'table.md'}")
