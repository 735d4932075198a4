"""How good is a style model? Its loss and speed against pixel optimisation (Gatys et al.).

For each held-out photo x (resized so its shorter side is ``size``, then centre-cropped
to size x size) this measures, under the loss L the model was trained with (same loss
network, same layers and weights; ``fast_style.nn.losses``):

- feed-forward: y = T(x) clamped to [0, 1]; ``L(y, x)`` and the wall time of T(x)
  (after one warm-up pass, median of 3 passes);
- optimisation: ``fast_style.evaluation.optimize.optimize_pixels`` started from the photo, one
  run of max(iterations) steps; the loss of the image after each requested count k
  and the optimiser's wall time up to k (loss evaluations for reporting excluded).

The summary has, per method, the mean content, style, TV and total loss over the
photos, the mean time per photo, and the feed-forward speed-up
``mean time(optimisation, k) / mean time(feed-forward)``; and for each photo the first
iteration count at which optimisation reaches the feed-forward total loss (Johnson et
al. report the network matching 50 .. 100 L-BFGS iterations, hundreds of times faster).

With ``flicker`` = T > 0 (frames), each photo also becomes a T-frame clip with a known
camera move and noise, and the model's temporal warping error on it is reported next to
the input's (:mod:`fast_style.evaluation.flicker`; 1/255 units, lower is steadier).

A multi-style model is measured one style at a time, ``styles=<name or index>``
(:mod:`fast_style.evaluation.one_style`): T(x) and the flicker clip run with that style's
weights, and the painting is the style config of that name unless ``style=`` gives one.

Outputs (:func:`evaluate`): ``evaluation.json`` (everything, per photo), ``table.md``
(the printed table) and ``grid.png`` (rows: photos; columns: photo | feed-forward |
optimisation at each count).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image, ImageDraw

from fast_style.devices import resolve_device
from fast_style.errors import FastStyleError
from fast_style.evaluation.flicker import flicker
from fast_style.evaluation.one_style import one_style
from fast_style.evaluation.optimize import LOSS_KEYS, build_loss, optimize_pixels, sync
from fast_style.inference.mixing import style_names
from fast_style.io.files import atomic_write_text, unique_path
from fast_style.io.images import (
    IMAGE_EXTENSIONS,
    images_below,
    load_image,
    save_image,
    square_image,
)
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import StyleModel, open_model
from fast_style.nn.losses import LOSS_TERMS
from fast_style.nn.vgg import weights_of_source
from fast_style.training.styles import resolve_style_image

OUTPUT_FILES = ("evaluation.json", "table.md", "grid.png")


class EvaluationError(FastStyleError):
    """A model, folder or option that the evaluation cannot use."""


# ---------------------------------------------------------------------------- the model and its loss


def open_trained(path: str | Path) -> StyleModel:
    """The style model (any kind with a PyTorch network) and check that its metadata
    records the loss it was trained with (``metadata.loss``, ``loss_net``, ``loss_net_config``)."""
    model = open_model(path)
    model.require_network("evaluation")
    loss = model.metadata.loss
    if not loss.get("content_layers") or not loss.get("style_layers"):
        raise EvaluationError(f"{path}: the model does not record the loss it was trained with; evaluation needs it")
    return model


def loss_net_kwargs(*, metadata: StyleModelMetadata, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """VGGFeatures kwargs that rebuild the model's loss network, and notes on assumptions.

    Non-null ``overrides`` (arch, pool, pretrained, weights, seed) win over the metadata.
    """
    trained = dict(metadata.loss_net_config)
    kwargs = {key: trained[key] for key in ("arch", "pool", "seed") if trained.get(key) is not None}
    notes = []
    weights = weights_of_source(metadata.loss_net)
    given = {key: value for key, value in overrides.items() if value is not None}
    if weights is None and not ({"pretrained", "weights"} & set(given)):
        raise EvaluationError(
            f"the model does not say which loss network trained it (loss_net={metadata.loss_net!r}); "
            "pass loss_net.pretrained=true|false or loss_net.weights=PATH"
        )
    kwargs.update(weights or {})
    kwargs.update(given)
    for key, default in (("arch", "vgg16"), ("pool", "max")):
        if key not in kwargs:
            kwargs[key] = default
            notes.append(f"{key} not recorded in the model, assumed {default} (set loss_net.{key})")
    kwargs.setdefault("pretrained", False if kwargs.get("weights") else True)
    return kwargs, notes


def describe_loss(loss: dict[str, Any]) -> str:
    """The loss' terms in one line, in :data:`fast_style.nn.losses.LOSS_TERMS`' order:
    ``content relu2_2 x 1e+05; style relu1_2, ... x 1e+10; tv x 1e+04`` (an optional term
    only when it is on)."""
    parts = []
    for term in LOSS_TERMS:
        weight = float(loss.get(term.weight_key) or 0.0)
        if term.optional and not weight:
            continue
        layers = f" {_layers(loss[term.layers_key])}" if term.layers_key else ""
        parts.append(f"{term.name}{layers} x {weight:g}")
    return "; ".join(parts)


def style_config(*, cfg: DictConfig, style_name: str, config_dir: Path | None) -> dict[str, Any]:
    """The ``style`` config: the one given (style=...), else the style config named like the model."""
    if cfg.get("style") is not None:
        return OmegaConf.to_container(cfg.style, resolve=True)
    if config_dir is not None:
        for path in sorted((Path(config_dir) / "style").glob("*.yaml")):
            candidate = OmegaConf.load(path)
            if OmegaConf.is_interpolation(candidate, "name"):  # style=multi: named after its list, no painting
                continue
            if candidate.get("name") == style_name and not OmegaConf.is_missing(candidate, "image"):
                return OmegaConf.to_container(candidate, resolve=True)
    raise EvaluationError(
        f"no style config is named {style_name!r} (the model's style); "
        "give style=<name> or style=custom style.image=PATH of the painting it was trained on"
    )


# ---------------------------------------------------------------------------- photos


def list_photos(folder: str | Path, *, limit: int | None) -> list[Path]:
    """Image files below ``folder`` (recursive, hidden ones left out), sorted, the first ``limit``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"images={folder}: not a folder; give a folder of held-out photos")
    photos = images_below(folder)
    if not photos:
        raise EvaluationError(f"images={folder}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)})")
    return photos[:limit] if limit else photos


def time_feed_forward(model: Callable[[torch.Tensor], torch.Tensor], photo: torch.Tensor, *,
                      repeats: int = 3) -> tuple[torch.Tensor, float]:
    """(T(x) clamped to [0, 1], median wall time of ``repeats`` passes in seconds)."""
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            sync(photo.device)
            start = time.perf_counter()
            output = model(photo)
            sync(photo.device)
            times.append(time.perf_counter() - start)
    return output.clamp(0, 1), statistics.median(times)


def first_reaching(totals: Sequence[float], target: float) -> int | None:
    """The first k with ``totals[k] <= target``, or None."""
    return next((k for k, value in enumerate(totals) if value <= target), None)


def summarize(per_image: list[dict[str, Any]], counts: Sequence[int]) -> dict[str, Any]:
    """Mean losses and times per method, and feed-forward speed-ups (see module docstring)."""

    def mean_of(entries: list[dict[str, float]]) -> dict[str, float]:
        return {key: statistics.fmean(e[key] for e in entries) for key in (*LOSS_KEYS, "seconds")}

    methods = {"feed_forward": mean_of([image["feed_forward"] for image in per_image])}
    ff_seconds = methods["feed_forward"]["seconds"]
    for k in counts:
        mean = mean_of([image["optimization"][str(k)] for image in per_image])
        mean["speedup"] = mean["seconds"] / ff_seconds if ff_seconds > 0 else float("inf")
        methods[f"optimization_{k}"] = mean
    summary = {"methods": methods, "reach_feed_forward": [image["reaches_feed_forward_at"] for image in per_image]}
    if per_image and all("flicker" in image for image in per_image):
        summary["flicker"] = {key: statistics.fmean(image["flicker"][key] for image in per_image)
                              for key in ("stylized", "input", "ratio")}
    return summary


def _layers(layers: Mapping[str, float]) -> str:
    return ", ".join(name if float(w) == 1.0 else f"{name} ({float(w):g})" for name, w in layers.items())


def format_table(report: Mapping[str, Any]) -> str:
    """The printed (markdown) table of an evaluation report."""
    loss, net, summary = report["loss"], report["loss_net"], report["summary"]
    optimizer = {"lbfgs": "L-BFGS", "adam": "Adam"}.get(report["optimizer"], report["optimizer"])
    style = report["style_name"]
    if report.get("model_styles"):
        style += f" of its styles {', '.join(report['model_styles'])}"
    lines = [
        f"Style model {report['ckpt']} ({style}, {report['steps']} steps) "
        f"vs pixel optimisation ({optimizer}, started from the photo)",
        f"Loss network: {net['arch'].upper().replace('VGG', 'VGG-')} {net['source']}, {net['pool']} pooling"
        + "".join(f"; {note}" for note in net["notes"]),
        "Loss: " + describe_loss(loss),
        f"{len(report['images'])} photo(s), {report['size']}x{report['size']} px, device {report['device']}"
        f" ({report['threads']} threads); means over the photos",
        "",
        "| method | content | style | tv | total | time / photo (s) | feed-forward speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in summary["methods"].items():
        label = "feed-forward" if name == "feed_forward" else f"optimisation, {name.split('_')[1]} iterations"
        speedup = "" if "speedup" not in m else f"{m['speedup']:.1f}x" if m["speedup"] < 10 else f"{m['speedup']:.0f}x"
        lines.append(
            f"| {label} | {m['content']:.4g} | {m['style']:.4g} | {m['tv']:.4g} | {m['total']:.4g} "
            f"| {m['seconds']:.3g} | {speedup} |"
        )
    top = max(report["iterations"])
    reach = ", ".join(str(k) if k is not None else f">{top}" for k in summary["reach_feed_forward"])
    lines += ["", f"Optimisation reaches the feed-forward total loss after: {reach} iterations (per photo)."]
    if "flicker" in summary:
        f = summary["flicker"]
        lines += [f"Flicker (temporal warping error on a clip with known motion, 1/255): stylized {f['stylized']:.2f}, "
                  f"input {f['input']:.2f}, ratio {f['ratio']:.2f}."]
    return "\n".join(lines)


def make_grid(rows: Sequence[Sequence[torch.Tensor]], labels: Sequence[str], *, pad: int = 4) -> Image.Image:
    """Rows of (1 or 3, H, W) / (1, 3, H, W) images in [0, 1] side by side under a label row."""
    from fast_style.io.images import tensor_to_pil

    cells = [[tensor_to_pil(image.reshape(image.shape[-3:]).cpu()) for image in row] for row in rows]
    width, height = cells[0][0].size
    header = 18
    grid = Image.new("RGB", (len(labels) * (width + pad) + pad, header + len(cells) * (height + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    for j, label in enumerate(labels):
        draw.text((pad + j * (width + pad) + 2, 3), label, fill="black")
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            grid.paste(cell, (pad + j * (width + pad), header + pad + i * (height + pad)))
    return grid


# ---------------------------------------------------------------------------- python scripts/evaluate.py


def _output_folder(cfg: DictConfig, style_name: str) -> Path:
    if cfg.get("output"):
        folder = Path(str(cfg.output)).expanduser()
        existing = [folder / name for name in OUTPUT_FILES if (folder / name).exists()]
        if existing and not cfg.get("overwrite"):
            raise EvaluationError(f"{existing[0]} exists; pass overwrite=true to replace it, or choose another output")
    else:
        folder = Path(str(cfg.paths.root_dir)) / "evaluations" / f"{style_name}-{int(cfg.size)}px"
        if folder.exists() and not cfg.get("overwrite"):
            folder = unique_path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _counts(cfg: DictConfig) -> list[int]:
    counts = cfg.iterations if OmegaConf.is_list(cfg.iterations) else [cfg.iterations]
    try:
        counts = sorted({int(k) for k in counts})
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"iterations={list(counts)}: give whole numbers, e.g. iterations=[50,100,300]") from exc
    if not counts or counts[0] < 1:
        raise EvaluationError(f"iterations={counts}: give positive counts, e.g. iterations=[50,100,300]")
    return counts


def evaluate(cfg: DictConfig, *, config_dir: str | Path | None = None) -> dict[str, Any]:
    """``python scripts/evaluate.py``: measure, print the table, write JSON, table and grid.

    ``config_dir`` (the ``configs`` folder) lets a model's style be found by its name
    when ``style=`` is not given. Returns the report (what ``evaluation.json`` holds).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    counts = _counts(cfg)
    size = int(cfg.size)
    if size < 16:
        raise EvaluationError(f"size={size}: too small for the loss network; use 32 or more")
    trained = open_trained(str(cfg.ckpt))
    model, record = trained.network, trained.metadata
    chosen = one_style(trained, cfg.get("styles"))
    style_name = chosen.label
    photos = list_photos(str(cfg.images), limit=cfg.get("num_images"))
    net_kwargs, notes = loss_net_kwargs(metadata=record, overrides=OmegaConf.to_container(cfg.loss_net, resolve=True))
    style = style_config(cfg=cfg, style_name=style_name, config_dir=config_dir)
    style_path = resolve_style_image(style_dir=cfg.paths.style_dir, **style)
    output = _output_folder(cfg, style_name)

    device = resolve_device(str(cfg.device))
    model = model.to(device)
    weights = None if chosen.weights is None else chosen.weights.to(device)

    def transform(x: torch.Tensor) -> torch.Tensor:
        return model(x, weights)

    style_image = load_image(style_path, max_size=style.get("size")).unsqueeze(0)
    loss = build_loss(loss=record.loss, loss_net=net_kwargs, style_image=style_image, device=device)
    source = loss.loss_net.source
    if record.loss_net and source != record.loss_net:
        notes.append(f"the model was trained with {record.loss_net}")

    per_image, grid_rows = [], []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not cfg.get("progress", True)) as progress:
        for index, path in enumerate(photos):
            photo = square_image(path, size).unsqueeze(0).to(device)
            if index == 0:
                time_feed_forward(transform, photo, repeats=1)  # warm-up
            stylized, seconds = time_feed_forward(transform, photo)
            with torch.no_grad():
                ff_losses = loss(stylized, photo)
                ff_terms = {key: float(ff_losses[key]) for key in LOSS_KEYS}
            snapshots: dict[int, torch.Tensor] = {}
            task = progress.add_task(f"{path.name} ({index + 1}/{len(photos)})", total=counts[-1])

            def on_step(k: int, image: torch.Tensor, terms: dict[str, float], task=task, snapshots=snapshots) -> None:
                progress.update(task, advance=1)
                if k in counts:
                    snapshots[k] = image.cpu()

            result = optimize_pixels(
                loss=loss, content=photo, iterations=counts[-1], optimizer=str(cfg.optimizer), lr=cfg.get("lr"), on_step=on_step
            )
            totals = [terms["total"] for terms in result.losses]
            per_image.append({
                "path": str(path),
                "feed_forward": {**ff_terms, "seconds": seconds},
                "optimization": {str(k): {**result.losses[k], "seconds": result.seconds[k]} for k in counts},
                "reaches_feed_forward_at": first_reaching(totals, ff_terms["total"]),
                "optimization_evaluations": result.evaluations,
                "optimization_totals": totals,
            })
            if int(cfg.get("flicker") or 0):
                per_image[-1]["flicker"] = flicker(transform, photo, frames=int(cfg.flicker))
            grid_rows.append([photo.cpu(), stylized.cpu(), *(snapshots[k] for k in counts)])

    report = {
        "ckpt": str(cfg.ckpt),
        "style_name": style_name,
        **({"model_styles": style_names(trained)} if chosen.num_styles > 1 else {}),
        "steps": "" if record.steps is None else str(record.steps),
        "style_image": str(style_path),
        "loss": record.loss,
        "loss_net": {**{k: net_kwargs.get(k) for k in ("arch", "pool")}, "source": source, "notes": notes},
        "optimizer": str(cfg.optimizer),
        "parametrisation": "y = sigmoid(z), started from the photo",
        "iterations": counts,
        "size": size,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "images": per_image,
        "summary": summarize(per_image, counts),
    }
    table = format_table(report)
    print(table)
    labels = ["photo", "feed-forward", *(f"{cfg.optimizer} {k}" for k in counts)]
    save_image(make_grid(grid_rows, labels), output / "grid.png")
    atomic_write_text(output / "table.md", table + "\n")
    atomic_write_text(output / "evaluation.json", json.dumps(report, indent=2))
    print(f"\nwritten: {output / 'evaluation.json'}, {output / 'table.md'}, {output / 'grid.png'}")
    return report
