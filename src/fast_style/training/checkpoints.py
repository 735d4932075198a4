"""Choosing the Lightning checkpoint a run resumes from, after verifying it.

A checkpoint is *usable* when ``torch.load`` (``map_location="cpu", weights_only=True``)
(the io layer's, :func:`fast_style.io.model_files.detect_kind`) reads it, so a pickle
that would import or run code is refused, never executed, and
it is a dict with ``state_dict``, an integer ``global_step`` and fast-style's
``hyper_parameters`` (with a ``model`` key, as :mod:`fast_style.io.model_files`
expects of a Lightning checkpoint). Checkpoints written by this project pass with
``weights_only=True``: every value in them is a tensor, a number, a string, None or
a list/dict/OrderedDict of those (the optimizer, cosine-schedule and ModelCheckpoint
states included).

:func:`choose_checkpoint`'s policy:

- ``ckpt_path=...`` given: used if usable, else one-line error; nothing is moved or written.
- otherwise (``auto_resume``): the run folder's ``checkpoints/last.ckpt`` if usable.
  If it exists but is not usable it is renamed to ``last.ckpt.corrupt`` (then
  ``last.ckpt.corrupt-2``, ``-3`` ...: never over an earlier one, never deleted; not
  a ``*.ckpt`` name, so neither ModelCheckpoint nor this chooser touches it again),
  one warning names it, and the run resumes from the newest usable periodic
  checkpoint ``step_*.ckpt`` (by its ``global_step``, not by file time). Without
  one the run stops with one line naming the file: a damaged checkpoint never turns
  into a silent restart from step 0.
- no ``last.ckpt`` but usable ``step_*.ckpt`` files: the newest of them (with a
  warning); nothing at all: None, a fresh start.

Only the global rank-zero process renames files; the other ranks of a DDP job make
the same choice (with ``last.ckpt`` already moved, the newest ``step_*.ckpt``).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fast_style.errors import CheckpointError, FastStyleError, first_line
from fast_style.io.model_files import detect_kind

log = logging.getLogger(__name__)

LAST = "last.ckpt"
PERIODIC = "step_*.ckpt"
CORRUPT_SUFFIX = ".corrupt"


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: its path, step, hyper-parameters and tensor shapes."""

    path: Path
    global_step: int
    hparams: dict = field(repr=False)
    shapes: dict[str, tuple[int, ...]] = field(repr=False)


def _load_reason(exc: BaseException) -> str:
    """Why ``torch.load`` with ``weights_only=True`` failed, in a few words."""
    if isinstance(exc, EOFError):
        return "empty or cut short"
    if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f"the Python object {found.group(1)}" if found else "Python objects"
        return f"it would load {what}, which can run code; refused, nothing in it was run"
    if "central directory" in str(exc) or "zip archive" in str(exc):
        return "truncated or damaged archive"
    return first_line(exc, limit=160)


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(2)
    except OSError:
        return b""


def _payload(path: Path) -> object:
    """The file's content, read by the io layer (``torch.load`` with ``weights_only=True`` in
    :func:`fast_style.io.model_files.detect_kind`); :class:`CheckpointError` with a short
    reason when it is not a Lightning checkpoint."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4" of foreign files
            kind, payload = detect_kind(path)
    except CheckpointError as exc:
        if exc.__cause__ is not None:  # torch.load itself failed
            reason = _load_reason(exc.__cause__)
        elif _head(path) == b"PK":  # a zip archive (torch.save) without its central directory
            reason = "truncated or damaged archive"
        else:
            reason = first_line(exc).removeprefix(f"{path}: ")
        raise CheckpointError(f"{path}: unreadable ({reason})") from exc
    if kind != "lightning":
        raise CheckpointError(f"{path}: a {kind} file, not a Lightning training checkpoint")
    return payload


def verify_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """The usable checkpoint at ``path`` (see the module docstring) or a one-line
    :class:`CheckpointError` ``"<path>: <reason>"``; runs no code from the file."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes)")
    payload = _payload(path)
    hparams = payload.get("hyper_parameters") if isinstance(payload, dict) else None
    state = payload.get("state_dict") if isinstance(payload, dict) else None
    step = payload.get("global_step") if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not isinstance(step, int) or not isinstance(hparams, dict) or "model" not in hparams:
        raise CheckpointError(f"{path}: not a fast-style training checkpoint (needs state_dict, global_step "
                              "and hyper_parameters.model)")
    shapes = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    return Checkpoint(path=path, global_step=step, hparams=hparams, shapes=shapes)


def newest_periodic(folder: Path) -> Checkpoint | None:
    """The usable ``step_*.ckpt`` in ``folder`` with the highest ``global_step``
    (warning once for each unusable one), or None."""
    usable = []
    for path in sorted(folder.glob(PERIODIC)):
        try:
            usable.append(verify_checkpoint(path))
        except CheckpointError as exc:
            log.warning("ignoring periodic checkpoint %s", exc)
    return max(usable, key=lambda c: (c.global_step, c.path.name), default=None)


def set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.corrupt`` (``.corrupt-2``, ... if taken) and return
    the new path; never replaces an existing file."""
    for n in range(1, 10_000):
        target = path.with_name(path.name + CORRUPT_SUFFIX + ("" if n == 1 else f"-{n}"))
        try:
            os.link(path, target)  # fails if target exists: nothing is ever overwritten
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links
            if target.exists():
                continue
            os.rename(path, target)
            return target
        os.unlink(path)
        return target
    raise FastStyleError(f"{path}: could not be moved aside (too many {path.name}{CORRUPT_SUFFIX}-N files); clean them up")


def _explicit(ckpt_path: str) -> Checkpoint:
    if not os.path.isfile(ckpt_path):
        raise FastStyleError(f"ckpt_path={ckpt_path}: no such checkpoint; give a .ckpt file such as <run>/checkpoints/last.ckpt")
    try:
        return verify_checkpoint(ckpt_path)
    except CheckpointError as exc:
        raise CheckpointError(f"ckpt_path={exc}; give a .ckpt that train.py wrote (<run>/checkpoints/last.ckpt "
                              "or step_*.ckpt)") from exc


def _from_run_folder(folder: Path, *, rank_zero: bool) -> Checkpoint | None:
    last = folder / LAST
    if last.is_file():
        try:
            chosen = verify_checkpoint(last)
            log.info("resuming from this run folder's %s (step %d)", last, chosen.global_step)
            return chosen
        except CheckpointError as exc:
            broken = exc
        fallback = newest_periodic(folder)
        if fallback is None:
            raise CheckpointError(
                f"{broken} and no usable {PERIODIC} beside it; move it away to start this run from step 0 "
                f"(mv {last} {last}{CORRUPT_SUFFIX}), or pass ckpt_path=<a good .ckpt>"
            )
        aside = set_aside(last) if rank_zero else last.with_name(last.name + CORRUPT_SUFFIX)
        log.warning("%s; moved it to %s and resuming from %s (step %d)", broken, aside.name,
                    fallback.path.name, fallback.global_step)
        return fallback
    fallback = newest_periodic(folder) if folder.is_dir() else None
    if fallback is not None:
        log.warning("no %s in %s; resuming from the newest periodic checkpoint %s (step %d)", LAST, folder,
                    fallback.path.name, fallback.global_step)
    return fallback


def choose_checkpoint(*, ckpt_path: str | None, checkpoint_dir: Path, auto_resume: bool = True,
                      rank_zero: bool = True) -> Checkpoint | None:
    """The verified checkpoint to resume from, or None for a fresh start (policy: module docstring).

    ``checkpoint_dir`` is the run folder's ``checkpoints/``; ``rank_zero``: whether this
    process may rename a damaged ``last.ckpt`` (the global rank 0 only).
    """
    if ckpt_path:
        return _explicit(str(ckpt_path))
    if not auto_resume:
        return None
    return _from_run_folder(Path(checkpoint_dir), rank_zero=rank_zero)


def check_fits(checkpoint: Checkpoint, expected: dict[str, tuple[int, ...]], *, config: dict) -> None:
    """One-line :class:`CheckpointError` unless ``checkpoint`` holds exactly the tensors
    (names and shapes) of ``expected`` (the module's state dict without the loss network).

    Checked before training because Lightning's failed restore would end in
    OnExceptionCheckpoint writing an untrained step-0 ``last.ckpt`` over the good one.
    ``config`` ({"model": ..., "loss": ...} of this run) names the setting that differs.
    """
    got = checkpoint.shapes
    wrong = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])
    missing, extra = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
    if not (wrong or missing or extra):
        return
    # the settings that decide the tensors: the whole network config and the style taps (Gram buffers)
    then = {**{f"model.{k}": v for k, v in (checkpoint.hparams.get("model") or {}).items()},
            "loss.style_layers": (checkpoint.hparams.get("loss") or {}).get("style_layers")}
    now = {**{f"model.{k}": v for k, v in config.get("model", {}).items()},
           "loss.style_layers": config.get("loss", {}).get("style_layers")}
    differs = [f"{key}={then[key]} there, {now.get(key)} here" for key in then if then[key] != now.get(key)]
    if differs:
        detail = "; ".join(differs[:3])
    elif wrong:
        detail = f"{wrong[0]} is {list(got[wrong[0]])} there, {list(expected[wrong[0]])} here"
    else:
        detail = f"tensor {(missing or extra)[0]} is {'missing' if missing else 'unexpected'}"
    raise CheckpointError(f"{checkpoint.path}: trained with a different network or loss ({detail}); resume with the "
                          "settings it was trained with, or train in a new run folder")
