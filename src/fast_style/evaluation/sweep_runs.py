"""Finding the runs of a sweep and reading what each left: one :class:`RunSummary` per run.

``runs=`` of ``scripts/compare.py`` (:func:`find_runs`) is a sweep folder (Hydra's multirun
folder: its run folders, in job order), a run folder, a glob (``logs/train/multiruns/*/*``),
or a list of them; a glob that matches nothing is one line (:class:`FastStyleError`). A
*run folder* holds at least one of ``.hydra/``, ``finished.json``, ``checkpoints/`` (what
``train.py`` writes: docs/training.md "What a run leaves"); a sweep folder's other folders
are left out, except those named like Hydra's job folders (``<num>_<name>``), which are
listed as "not a run folder".

:func:`read_run` reads, without opening any model or image:

- ``label``: the run's command-line overrides (``.hydra/overrides.yaml``);
- ``status``: ``ok`` (``finished.json`` written), ``training`` (no ``finished.json`` yet,
  a ``checkpoints/last.ckpt``: shown from it; a run that was stopped looks the same) or
  ``failed`` (no model to show), with ``reason``;
- ``model``: the run folder's own copy of the style model (``<run>/<style>.safetensors``),
  else ``finished.json``'s ``style_model``, else ``checkpoints/last.ckpt``;
- ``objective``, ``reference``, ``kind``, ``weights``, ``photos`` and ``photo_size``:
  ``objective.json`` (docs/training.md "The objective"); ``photos`` resolved to files
  (:func:`resolve_photos`);
- ``losses``: the last logged training losses ``content``, ``style``, ``tv``, ``total``
  (``final/train_*`` of the TensorBoard event files, else the last ``train/*`` point);
- ``steps``: ``finished.json``'s ``global_step`` (a training run: its checkpoint's, filled in
  when the model is opened); ``seconds``: ``finished.json``'s (train.py's wall time from the
  style images to the objective), else, for runs written before it recorded one and runs
  still training, from the run's start (Hydra writes ``.hydra/config.yaml``; a resumed run:
  its last start) to ``finished.json`` (training: to its ``last.ckpt``); ``steps_per_s``:
  ``finished.json``'s;
- ``paintings``: the style image(s) the run trained on: ``finished.json``'s ``paintings``,
  else its ``train.log`` line ``style <name>: <path> (WxH)``, else ``.hydra/config.yaml``'s
  ``style.image``.

Relative paths a run recorded are taken from the folder it was started in
(``.hydra/hydra.yaml``'s ``hydra.runtime.cwd``).
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fast_style.errors import FastStyleError, first_line
from fast_style.io.images import images_below

log = logging.getLogger(__name__)

FINISHED = "finished.json"
OBJECTIVE = "objective.json"
LAST_CKPT = Path("checkpoints") / "last.ckpt"
RUN_MARKERS = (".hydra", FINISHED, "checkpoints")
JOB_FOLDER = re.compile(r"^\d+_")  # Hydra's sweep subdir ${hydra.job.num}_<name>
STYLE_LINE = re.compile(r"\] - style (?P<name>\S+): (?P<path>.+) \((?P<w>\d+)x(?P<h>\d+)\)\s*$")
LOSS_NAMES = ("content", "style", "tv", "total")
GLOB_CHARS = set("*?[")
STATUSES = ("ok", "training", "failed")


@dataclass
class RunSummary:
    """What one run folder says about itself (module docstring); ``status`` one of
    :data:`STATUSES`, ``reason`` why it is not ``ok`` (or a note)."""

    folder: Path
    status: str = "failed"
    reason: str = ""
    overrides: list[str] = field(default_factory=list)
    label: str = ""
    model: Path | None = None
    objective: float | None = None
    reference: float | None = None
    kind: str | None = None
    weights: dict[str, float] | None = None
    photos: list[Path] = field(default_factory=list)
    missing_photos: list[str] = field(default_factory=list)
    photo_size: int | None = None
    losses: dict[str, float] = field(default_factory=dict)
    steps: int | None = None
    seconds: float | None = None
    steps_per_s: float | None = None
    paintings: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.folder.name

    def as_json(self) -> dict[str, Any]:
        """The summary as JSON values (paths as strings)."""
        values = asdict(self)
        values["folder"] = str(self.folder)
        values["model"] = None if self.model is None else str(self.model)
        values["photos"] = [str(p) for p in self.photos]
        values["paintings"] = [str(p) for p in self.paintings]
        return values


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` holds one of :data:`RUN_MARKERS`."""
    return folder.is_dir() and any((folder / marker).exists() for marker in RUN_MARKERS)


def _job_order(path: Path) -> tuple:
    """Hydra's job folders by job number (``10_x`` after ``9_x``), then by name."""
    head = re.match(r"^(\d+)", path.name)
    return (int(head.group(1)) if head else float("inf"), path.name)


def runs_in_sweep(folder: Path, *, skip: tuple[Path, ...] = ()) -> list[Path]:
    """The run folders directly in a sweep folder (and folders named like Hydra's job folders),
    in job order; ``skip``: folders left out (an earlier contact sheet's)."""
    skipped = {p.resolve() for p in skip}
    found = [child for child in folder.iterdir() if child.is_dir() and child.resolve() not in skipped
             and (is_run_folder(child) or JOB_FOLDER.match(child.name))]
    return sorted(found, key=_job_order)


def find_runs(runs: Any) -> tuple[list[Path], Path | None]:
    """The folders ``runs`` names (module docstring), each once in the order given, and the
    sweep folder when ``runs`` is one folder that is not itself a run (else None). One line
    for a glob that matches nothing, or when nothing at all is named."""
    entries = [runs] if isinstance(runs, str | os.PathLike) else list(runs or [])
    if not entries:
        raise FastStyleError("runs= names no runs; give a sweep folder, a run folder, a glob or a list, "
                             "e.g. runs=logs/train/multiruns/<date_time>")
    folders: list[Path] = []
    sweep = None
    for entry in map(str, entries):
        if GLOB_CHARS & set(entry):
            matched = sorted(glob.glob(os.path.expanduser(entry)), key=lambda p: _job_order(Path(p)))
            if not matched:
                raise FastStyleError(f"runs={entry}: the glob matches nothing; check the path, or name the sweep "
                                     "folder itself (runs=logs/train/multiruns/<date_time>)")
            folders += [Path(p) for p in matched if Path(p).is_dir()]
            continue
        path = Path(entry).expanduser()
        if path.is_dir() and not is_run_folder(path) and (found := runs_in_sweep(path)):
            folders += found
            sweep = path if len(entries) == 1 else None
        else:
            folders.append(path)  # a run, or a row saying why it is not one
    unique = list(dict.fromkeys(folders))
    if not unique:
        raise FastStyleError(f"runs={runs}: no run folders found; give a sweep folder, run folders or a glob of them")
    return unique, sweep


def _read_json(path: Path) -> tuple[dict | None, str | None]:
    """(content, None), (None, None) when absent, (None, why) when unreadable."""
    if not path.is_file():
        return None, None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"{path.name} unreadable ({first_line(exc, limit=100)})"
    return (value, None) if isinstance(value, dict) else (None, f"{path.name} is not a JSON object")


def _yaml(path: Path) -> Any:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.load(path) if path.is_file() else None
    except Exception:  # noqa: BLE001 - a damaged file is only a missing label here
        return None


def _run_cwd(folder: Path) -> Path:
    """The folder the run was started from (``hydra.runtime.cwd``), else the current one."""
    hydra = _yaml(folder / ".hydra" / "hydra.yaml")
    cwd = hydra.get("hydra", {}).get("runtime", {}).get("cwd") if hydra is not None else None
    return Path(cwd) if cwd else Path.cwd()


def _from(cwd: Path, value: str | os.PathLike) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else cwd / path


def overrides_of(folder: Path) -> list[str]:
    """``.hydra/overrides.yaml`` as a list of ``key=value`` strings ([] without it)."""
    node = _yaml(folder / ".hydra" / "overrides.yaml")
    return [str(item) for item in node] if node is not None else []


def short_override(override: str) -> str:
    """``key=value`` with a number written short (``loss.style_weight=10000000000.0`` ->
    ``loss.style_weight=1e+10``); anything else unchanged."""
    key, sep, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    return f"{key}{sep}{number:g}" if sep and math.isfinite(number) and len(f"{number:g}") < len(value) else override


def differing_overrides(runs: list[RunSummary]) -> None:
    """Set each run's ``label`` to the overrides that are not the same in every run (a
    sweep's swept keys; numbers written short), or all of them when none differ or there
    is one run."""
    known = [set(r.overrides) for r in runs if r.overrides]  # a broken folder without overrides.yaml aside
    common = set.intersection(*known) if len(known) > 1 else set()
    for run in runs:
        own = [o for o in run.overrides if o not in common] or run.overrides
        run.label = " ".join(map(short_override, own)) if own else run.name


def _model_of(folder: Path, finished: dict | None) -> Path | None:
    """The model to show (module docstring)."""
    if finished is not None:
        exported = finished.get("style_model")
        if exported:
            own = folder / Path(str(exported)).name
            if own.is_file():
                return own
        copies = sorted(folder.glob("*.safetensors"))
        if copies:
            return copies[0]
        if exported and Path(str(exported)).is_file():
            return Path(str(exported))
    last = folder / LAST_CKPT
    return last if last.is_file() else None


def last_losses(folder: Path) -> dict[str, float]:
    """The run's last training losses (module docstring) from its TensorBoard event files."""
    events = sorted(folder.glob("tensorboard/**/events.out.tfevents.*")) or sorted(folder.glob("events.out.tfevents.*"))
    if not events:
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    final: dict[str, float] = {}
    curve: dict[str, tuple[int, float]] = {}
    for path in events:
        try:
            accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
            accumulator.Reload()
            tags = accumulator.Tags().get("scalars", [])
        except Exception as exc:  # noqa: BLE001 - a damaged event file only hides the losses
            log.debug("%s: %s", path, exc)
            continue
        for name in LOSS_NAMES:
            if f"final/train_{name}" in tags:
                final[name] = float(accumulator.Scalars(f"final/train_{name}")[-1].value)
            if f"train/{name}" in tags:
                point = accumulator.Scalars(f"train/{name}")[-1]
                if name not in curve or point.step >= curve[name][0]:
                    curve[name] = (point.step, float(point.value))
    return {name: final.get(name, curve[name][1] if name in curve else None) for name in LOSS_NAMES
            if name in final or name in curve}


def paintings_of(folder: Path, cwd: Path, finished: dict | None = None) -> list[Path]:
    """The style image(s) the run trained on (module docstring), those that exist."""
    recorded = (finished or {}).get("paintings")
    found: list[Path] = [_from(cwd, str(p)) for p in recorded] if isinstance(recorded, list) else []
    train_log = folder / "train.log"
    if not found and train_log.is_file():
        with open(train_log, errors="replace") as handle:
            for line in handle:
                match = STYLE_LINE.search(line)
                if match:
                    found.append(_from(cwd, match.group("path")))
    if not found:
        config = _yaml(folder / ".hydra" / "config.yaml")
        image = config.get("style", {}).get("image") if config is not None else None
        if image:
            found.append(_from(cwd, str(image)))
    return [p for p in dict.fromkeys(found) if p.is_file()]


def _data_folders(folder: Path, cwd: Path) -> list[Path]:
    """The run's ``data.sample_root`` and ``data.root``, where its sample photos came from."""
    from omegaconf import OmegaConf

    config = _yaml(folder / ".hydra" / "config.yaml")
    folders = []
    for key in ("data.sample_root", "data.root"):
        try:
            value = OmegaConf.select(config, key) if config is not None else None
        except Exception:  # noqa: BLE001 - an interpolation that needs the Hydra run
            value = None
        if value:
            folders.append(_from(cwd, str(value)))
    return [p for p in folders if p.is_dir()]


def resolve_photos(names: list[str], *, folder: Path, cwd: Path) -> tuple[list[Path], list[str]]:
    """(files, names not found) of an objective.json's ``photos``: a path (absolute, or from
    the run's start folder), or a bare file name from the data module's samples, looked up
    under the run's ``data.sample_root`` or ``data.root``."""
    found: list[Path] = []
    missing: list[str] = []
    below: dict[str, Path] | None = None
    for name in names:
        path = _from(cwd, name)
        if path.is_file():
            found.append(path)
            continue
        if below is None:
            below = {}
            for root in _data_folders(folder, cwd):
                for file in images_below(root):
                    below.setdefault(file.name, file)
        if Path(name).name in below:
            found.append(below[Path(name).name])
        else:
            missing.append(name)
    return found, missing


def _last_error(folder: Path) -> str:
    """The last line of ``train.log`` that reports an error, shortened, or ''."""
    train_log = folder / "train.log"
    if not train_log.is_file():
        return ""
    last = ""
    with open(train_log, errors="replace") as handle:
        for line in handle:
            if "ERROR" in line or "error:" in line.lower() or "Error" in line:
                last = line.strip()
    return f"; train.log: {last.split('] - ', 1)[-1][:160]}" if last else ""


def read_run(folder: str | os.PathLike) -> RunSummary:
    """The :class:`RunSummary` of ``folder`` (module docstring); never raises for a bad folder."""
    folder = Path(folder)
    run = RunSummary(folder=folder)
    if not folder.exists():
        run.reason = "no such folder"
        return run
    if not is_run_folder(folder):
        run.reason = "not a run folder (no .hydra/, finished.json or checkpoints/); name a train.py run or sweep folder"
        return run
    cwd = _run_cwd(folder)
    run.overrides = overrides_of(folder)
    run.label = " ".join(run.overrides) or folder.name
    finished, finished_error = _read_json(folder / FINISHED)
    objective, objective_error = _read_json(folder / OBJECTIVE)
    if objective is not None:
        run.kind = objective.get("kind")
        run.objective = _number(objective.get("value"))
        run.reference = _number((objective.get("reference") or {}).get("total"))
        run.weights = objective.get("weights")
        run.photo_size = objective.get("size")
        run.photos, run.missing_photos = resolve_photos([str(p) for p in objective.get("photos") or []],
                                                        folder=folder, cwd=cwd)
    run.losses = last_losses(folder)
    run.paintings = paintings_of(folder, cwd, finished)
    run.model = _model_of(folder, finished)
    start = folder / ".hydra" / "config.yaml"
    if finished is not None:
        run.steps = _integer(finished.get("global_step"))
        run.steps_per_s = _number(finished.get("steps_per_s"))
        end = folder / FINISHED
    else:
        end = folder / LAST_CKPT
    recorded = _number(finished.get("seconds")) if finished is not None else None
    if recorded is not None and math.isfinite(recorded) and recorded >= 0:
        run.seconds = recorded
    elif start.is_file() and end.is_file():
        run.seconds = max(0.0, end.stat().st_mtime - start.stat().st_mtime)
    if run.model is None:
        why = finished_error or "no model: no finished.json and no checkpoints/last.ckpt (the run failed or has not " \
                                "reached its first checkpoint)"
        if finished is not None:
            why = "finished.json names no style model that exists, and no checkpoints/last.ckpt"
        run.reason = why + _last_error(folder)
        return run
    run.status = "ok" if finished is not None else "training"
    if finished is None:
        run.reason = f"still training (or stopped): no {FINISHED} yet; shown from {LAST_CKPT}"
        if finished_error:
            run.reason = f"{finished_error}; shown from {LAST_CKPT}"
    elif objective_error:
        run.reason = objective_error
    return run


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _integer(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
