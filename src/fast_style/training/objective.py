"""The number a run returns to a sweeper (``objective``), and ``<run>/objective.json``.

``train.py`` returns the objective's value, which Hydra's optimising sweepers (Optuna,
Nevergrad, Ax) minimise. Three kinds (``objective=<kind>``, :class:`fast_style.config.ObjectiveSchema`):

- ``heldout`` (the default): the perceptual loss of the trained transform net T on N
  photos x_1 .. x_N (centre squares of ``objective.size`` px, (N, 3, S, S) in [0, 1]) for each
  of the K styles it trained. y = T(x, k) in eval mode, unclamped, as a training step sees
  it; the loss is the training loss' own ``PerceptualLoss`` (:mod:`fast_style.nn.losses`)
  with its weights set to 1, which gives the unit terms
  ``c = mean_k mean_n content(y_n, x_n)``, ``s`` (style against style k's Grams) and
  ``tv`` likewise, averaged over photos (batches of ``objective.batch_size``, weighted by
  their size) and styles. Under weights w the terms are ``L_c = w_c c``, ``L_s = w_s s``,
  ``L_tv = w_tv tv`` and the value is ``L_c + L_s + L_tv``: with the run's own ``loss``
  weights this equals ``PerceptualLoss(T(x), x)["total"]`` over one batch of all photos
  (one style). The temporal term (``loss.temporal_weight``) is left out: it needs a random
  second view.
  ``objective.returns`` says which total the run returns: ``total`` (the default: under the
  run's own weights) or ``reference`` (under the reference weights, below: what a sweep over
  the loss weights minimises, ``configs/hparams_search/style_weights.yaml``).
- ``train_total``: the last training step's logged ``train/total`` (on rank 0: its own
  batch), nothing computed.
- ``none``: nothing computed, no ``objective.json``, the run returns None.

The reference total: a sweep over ``loss.style_weight`` changes the loss itself, so runs'
values are not comparable. ``reference`` holds the same unit terms under one fixed
weighting for every run of a sweep: ``objective.reference_weights``, each key left out
taken from the loss preset's file (``configs/loss/<loss>.yaml``, the weights before any
command-line or experiment override), or, with no Hydra run to find it, the run's own.

Default photos: ``objective.images`` (a folder, a file or a list), else ``check.images``
(filled with the demo's held-out photos first when ``check.demo_photos``), else the data
module's sample photos (``data.sample_root``, or photos spread over ``data.root``: photos
the run trains on). They are read before training, so a bad one ends the run at once.

Computed on global rank 0 after training; the other ranks of a DDP run return None (their
launcher does not read it: Hydra's local launcher runs rank 0 itself, the SLURM launcher
reads task 0's result). A run found finished returns the value its ``finished.json`` kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from fast_style.errors import FastStyleError
from fast_style.io.files import atomic_write_text
from fast_style.io.images import ImageReadError, images_below, square_image
from fast_style.nn.losses import LOSS_TERMS, PerceptualLoss, term_weights

log = logging.getLogger(__name__)

KINDS = ("heldout", "train_total", "none")
RETURNS = ("total", "reference")  # objective.returns: the total under the run's weights, or the reference's
OBJECTIVE_FILE = "objective.json"
# the terms PerceptualLoss computes from one stylized batch, and the keys of their weights
TERMS = {term.name: term.weight_key for term in LOSS_TERMS if term.one_view}
MIN_SIZE = 16  # the loss network's deepest tap (relu4_3) is 1/8 of the input


@dataclass(frozen=True)
class Photos:
    """The objective's photos: ``images`` (N, 3, S, S) in [0, 1], their ``names`` and where
    they came from (``source``)."""

    images: torch.Tensor
    names: tuple[str, ...]
    source: str


def objective_options(cfg: DictConfig) -> dict[str, Any]:
    """``cfg.objective`` checked and resolved into a plain dict: ``kind``; ``images`` (a list
    of paths, or None: the data module's samples) and ``source`` (the option they came from);
    ``demo_photos``; ``size`` (null: ``data.sample_size``); ``batch_size``; ``weights`` (the
    run's) and ``reference_weights`` (complete, with ``reference_source``); ``returns``. One
    line for a value out of range."""
    node = cfg.get("objective")
    options = OmegaConf.to_container(node, resolve=True) if node is not None else {"kind": "none"}
    kind = str(options.get("kind"))
    if kind not in KINDS:
        raise FastStyleError(f"objective={kind}: use one of {', '.join(KINDS)} (objective=heldout, the default)")
    returns = str(options.get("returns") or "total")
    if returns not in RETURNS:
        raise FastStyleError(f"objective.returns={returns}: use total (under the run's loss weights) or "
                             "reference (under objective.reference_weights)")
    if returns == "reference" and kind != "heldout":
        raise FastStyleError(f"objective.returns=reference needs objective=heldout (objective={kind} has no "
                             "reference total); drop objective.returns or use objective=heldout")
    size = int(cfg.data.sample_size) if options.get("size") is None else int(options["size"])
    if size < MIN_SIZE:
        raise FastStyleError(f"objective.size={size}: at least {MIN_SIZE} px, e.g. 256")
    batch = int(options.get("batch_size") or 0)
    if batch < 1:
        raise FastStyleError(f"objective.batch_size={batch}: at least 1, e.g. 4")
    images, source, demo = options.get("images"), "objective.images", False
    if images is None and cfg.get("check") is not None:
        images, source, demo = cfg.check.images, "check.images", bool(cfg.check.get("demo_photos"))
    if images is None:
        source = "data samples" + ("" if cfg.data.get("sample_root") else " (from data.root: photos it trains on)")
    elif isinstance(images, str | Path):
        images = [images]
    loss = OmegaConf.to_container(cfg.loss, resolve=True)
    weights = {key: float(loss.get(key) or 0.0) for key in TERMS.values()}
    reference, reference_source = reference_weights(cfg, options.get("reference_weights"), weights)
    return {"kind": kind, "images": None if images is None else [str(p) for p in images], "source": source,
            "demo_photos": demo, "size": int(size), "batch_size": batch, "weights": weights,
            "reference_weights": reference, "reference_source": reference_source, "returns": returns}


def reference_weights(cfg: DictConfig, given: Mapping | None, run: Mapping[str, float]) -> tuple[dict[str, float], str]:
    """The fixed reference weighting (module docstring) and where it came from: ``given``
    (``objective.reference_weights``), each key null or left out from the loss preset's file,
    or without a Hydra run the run's own weights ``run``."""
    given = {key: value for key, value in (given or {}).items() if value is not None}
    unknown = set(given) - set(TERMS.values())
    if unknown:
        raise FastStyleError(f"objective.reference_weights: unknown {', '.join(sorted(unknown))}; "
                             f"use {', '.join(TERMS.values())}")
    infinite = [key for key, value in given.items() if not math.isfinite(value)]
    if infinite:
        raise FastStyleError(f"objective.reference_weights.{infinite[0]}={given[infinite[0]]}: must be a finite number")
    negative = [key for key, value in given.items() if value < 0]
    if negative:
        raise FastStyleError(f"objective.reference_weights.{negative[0]}={given[negative[0]]}: must be 0 or more")
    preset = loss_preset(cfg)
    path, values = preset if preset is not None else ("the run's own weights", dict(run))
    weights = {key: float(given.get(key, values.get(key, run[key]))) for key in TERMS.values()}
    if set(given) >= set(TERMS.values()):
        return weights, "objective.reference_weights"
    return weights, f"objective.reference_weights and {path}" if given else str(path)


def loss_preset(cfg: DictConfig) -> tuple[Path, dict] | None:
    """(path, values) of the run's ``configs/loss/<choice>.yaml``, from ``cfg.hydra`` when the
    config was composed with it (tests), else from the running Hydra app; None without either."""
    from hydra.core.hydra_config import HydraConfig

    if "hydra" in cfg:
        runtime = cfg.hydra.runtime
    elif HydraConfig.initialized():
        runtime = HydraConfig.get().runtime
    else:
        return None
    choice = runtime.choices.get("loss")
    for source in runtime.config_sources:
        path = Path(source.path) / "loss" / f"{choice}.yaml"
        if source.schema == "file" and path.is_file():
            return path, OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return None


def photo_files(entries: list[str]) -> list[Path]:
    """Every image file that ``entries`` (folders, searched recursively, and files) name; one
    line for a missing path or an empty folder."""
    files: list[Path] = []
    for entry in map(Path, entries):
        if entry.is_dir():
            found = images_below(entry)
            if not found:
                raise FastStyleError(f"objective.images: {entry} holds no photos; put a few jpg/png photos there, "
                                     "name others (objective.images=<folder or list>), or use objective=train_total")
            files += found
        elif entry.is_file():
            files.append(entry)
        else:
            raise FastStyleError(f"objective.images: {entry}: no such file or folder; give a folder of photos or "
                                 "a list of image files (objective.images=...), or use objective=train_total")
    return files


def load_photos(options: Mapping[str, Any], *, samples: torch.Tensor | None = None,
                sample_names: list[str] | None = None) -> Photos:
    """The objective's photos, read now (before training): ``options['images']``' files as
    centre squares of ``options['size']`` px, or without images the data module's
    ``samples`` (S, 3, s, s), resized to that size; one line naming a file that is not a
    readable image, or when there are no photos."""
    from fast_style.training.demo import HELD_OUT_PHOTOS, prepare_content

    size = options["size"]
    if options["images"] is None:
        if samples is None or len(samples) == 0:
            raise FastStyleError("objective: no sample photos to measure the model on; name some "
                                 "(objective.images=<folder or list>) or use objective=train_total")
        if samples.shape[-1] != size or samples.shape[-2] != size:
            samples = F.interpolate(samples, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        names = sample_names if sample_names and len(sample_names) == len(samples) else [
            f"sample {i}" for i in range(len(samples))]
        return Photos(samples.clamp(0, 1), tuple(names), options["source"])
    if options["demo_photos"]:
        for entry in options["images"]:
            prepare_content(Path(entry), photos=HELD_OUT_PHOTOS)
    images = []
    files = photo_files(options["images"])
    for path in files:
        try:
            images.append(square_image(path, size))
        except ImageReadError as exc:
            raise FastStyleError(f"{options['source']}: {exc}; remove it or name other photos "
                                 f"({options['source']}=<folder or list>), or use objective=train_total") from exc
    return Photos(torch.stack(images), tuple(str(p) for p in files), options["source"])


@contextlib.contextmanager
def unit_weights(loss: PerceptualLoss) -> Iterator[PerceptualLoss]:
    """``loss`` with every term's weight 1 for the block (restored after it)."""
    saved = {key: getattr(loss, key) for key in TERMS.values()}
    try:
        for key in saved:
            setattr(loss, key, 1.0)
        yield loss
    finally:
        for key, value in saved.items():
            setattr(loss, key, value)


def unit_terms(module, images: torch.Tensor, *, batch_size: int = 4) -> dict[str, float]:
    """The unit terms c, s, tv (module docstring) of ``module`` (a StyleTransferModule) on
    ``images`` (N, 3, S, S): the mean over the photos and the K trained styles, in fp32 and
    eval mode, nothing kept for a backward pass, torch.compile's wrappers bypassed."""
    sums = dict.fromkeys(TERMS, 0.0)
    count = 0
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), torch.autocast(module.device.type, enabled=False), unit_weights(module.loss) as loss:
            for k in range(loss.num_styles):
                for batch in images.split(batch_size):
                    batch = batch.to(module.device, torch.float32)
                    index = torch.full((len(batch),), k, device=module.device, dtype=torch.long)
                    weights = module.style_weights(index) if module.transformer.num_styles > 1 else None
                    if module.channels_last:
                        batch = batch.contiguous(memory_format=torch.channels_last)
                    # forward() itself: with compile=true the compiled call would recompile for eval and no-grad
                    output = module.transformer.forward(batch, weights).float()
                    terms = loss.forward(output, batch, index if loss.num_styles > 1 else None)
                    for name in TERMS:
                        sums[name] += float(terms[name]) * len(batch)
                    count += len(batch)
    finally:
        module.train(was_training)
    return {name: value / count for name, value in sums.items()}


def weigh(unit: Mapping[str, float], weights: Mapping[str, float]) -> dict[str, float]:
    """The weighted terms ``w_t * unit_t`` and their ``total``."""
    given = term_weights(weights)  # an optional term's weight left out: 0, off
    terms = {name: float(given[key]) * unit[name] for name, key in TERMS.items()}
    return {**terms, "total": sum(terms.values())}


def compute_objective(options: Mapping[str, Any], *, module, trainer, photos: Photos | None) -> dict[str, Any] | None:
    """The record of ``objective.json`` (``value`` is what the run returns), or None for
    ``kind`` none. heldout: ``terms`` (the run's weights) and ``reference`` (the reference
    weights) of the photos, with ``unit_terms``; ``value`` is ``terms['total']``, or
    ``reference['total']`` for ``returns`` reference (named in ``returns``); train_total:
    the last logged total."""
    kind = options["kind"]
    if kind == "none":
        return None
    record: dict[str, Any] = {"kind": kind, "step": int(trainer.global_step), "weights": dict(options["weights"])}
    if kind == "train_total":
        last = trainer.callback_metrics.get("train/total")
        if last is None:
            raise FastStyleError("objective=train_total: no training step logged train/total (did the run train?)")
        record["value"] = float(last)
        return record
    unit = unit_terms(module, photos.images, batch_size=options["batch_size"])
    terms, reference = weigh(unit, options["weights"]), weigh(unit, options["reference_weights"])
    returns = options.get("returns", "total")
    value = reference["total"] if returns == "reference" else terms["total"]
    record.update(value=value, returns=returns, photos=list(photos.names), photos_source=photos.source,
                  size=int(photos.images.shape[-1]), styles=list(module.style_names[module.frozen_styles:]),
                  terms=terms, unit_terms=unit,
                  reference={**reference, "weights": dict(options["reference_weights"]),
                             "source": options["reference_source"]})
    return record


def write_objective(folder: Path, record: Mapping[str, Any]) -> Path:
    """``<folder>/objective.json``, written atomically."""
    path = Path(folder) / OBJECTIVE_FILE
    atomic_write_text(path, json.dumps(record, indent=2))
    log.info("objective (%s): %.6g, in %s", record["kind"], record["value"], path)
    return path
