"""``train.py`` runs for the studies, each in a subprocess and a folder of its own.

A study (:mod:`studies.multistyle`, :mod:`studies.flicker_study`)
trains its models with the project's own command line, so that what it measures is what
a user's ``python train.py ...`` gives. A run whose folder already holds ``finished.json``
is not trained again: a study that stopped half way resumes with its next model.

``project`` is the checkout that holds ``train.py`` and ``configs/``: the entry script
(scripts/<study>.py) passes its own; nothing here finds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from fast_style.errors import FastStyleError
from fast_style.io.files import atomic_write_text


class StudyError(FastStyleError):
    """A study setting or input that cannot work, or a training run that failed (one line)."""


def train_in_folder(run_dir: Path, overrides: Sequence[str], *, project: Path, label: str, steps: int
                    ) -> dict[str, Any]:
    """Run ``python <project>/train.py <overrides>`` in ``project`` for exactly ``steps`` steps, without TensorBoard
    or sample grids, with its run folder (and exported style model) in ``run_dir``;
    returns the run's ``finished.json``. Raises :class:`StudyError` with the last lines
    of its output when it fails."""
    finished = run_dir / "finished.json"
    if finished.is_file():
        return json.loads(finished.read_text())
    # the caller's overrides come after these (Hydra keeps the last value of a key)
    command = [sys.executable, str(project / "train.py"), f"trainer.max_steps={steps}", "trainer.max_epochs=-1",
               "logger=[]", "callbacks.style_samples.every_n_steps=0", *overrides,
               f"paths.checkpoint_dir={run_dir}/export", f"hydra.run.dir={run_dir}"]
    started = time.monotonic()
    print(f"training {label} ({steps} steps) ...", flush=True)
    done = subprocess.run(command, cwd=project, capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise StudyError(f"train.py for {label} failed ({done.returncode}): {' | '.join(tail)}")
    print(f"  {label}: {time.monotonic() - started:.0f} s", flush=True)
    return json.loads(finished.read_text())


def style_config(name: str, *, project: Path) -> dict[str, Any]:
    """``<project>/configs/style/<name>.yaml`` as a dict."""
    path = project / "configs" / "style" / f"{name}.yaml"
    if not path.is_file():
        raise StudyError(f"style {name!r}: no configs/style/{name}.yaml")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def style_tensor(name: str, style_dir: Path, *, project: Path) -> torch.Tensor:
    """The painting of ``<project>/configs/style/<name>.yaml`` exactly as training loads it."""
    return style_tensor_of(style_config(name, project=project), style_dir, project=project)


def style_tensor_of(config: dict[str, Any], style_dir: Path, *, project: Path) -> torch.Tensor:
    """The painting of a ``style`` config exactly as training loads it (file, checksum,
    ``style.size``): (3, H, W) in [0, 1]; a relative ``style_dir`` is ``project``'s."""
    from fast_style.training.styles import resolve_style_image
    from fast_style.training.train import load_style_tensor

    path = resolve_style_image(style_dir=str(project / style_dir), **config)
    return load_style_tensor(path, size=config.get("size"))[0]


def composed_config(run: dict[str, Any]) -> dict[str, Any]:
    """The whole config a finished run trained with (its ``.hydra/config.yaml``), resolved."""
    return OmegaConf.to_container(OmegaConf.load(Path(run["output_dir"]) / ".hydra" / "config.yaml"), resolve=True)


def write_report(report: dict[str, Any], text: str, output_dir: Path) -> str:
    """A study's ``study.json`` (``report``) and ``table.md`` (``text``) in ``output_dir``; returns ``text``."""
    atomic_write_text(output_dir / "study.json", json.dumps(report, indent=2))
    atomic_write_text(output_dir / "table.md", text + "\n")
    return text
