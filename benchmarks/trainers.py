"""``train.py``'s default trainer against the explicit choices, end to end, steps/s side by side.

    python scripts/benchmark.py part=trainers [steps=40] [repeats=2] [sizes=[128x4]] [quick=true]

Each variant is one ``python train.py`` run (the ``train.py`` of ``project_dir``) with the
same seed, data and model: the paper-sized TransformerNet, a seeded random VGG-16 (no
download), crops of ``SIZE`` px in batches of ``BATCH`` from 32 photos cut from the sample photos,
the drawn demo painting, ``trainer.max_steps=steps``, no logger, samples or objective.
Its speed is ``steps_per_s`` of the run's ``finished.json`` (steps over the time from the
first to the last training step: set-up, VGG and the export are left out). The variants
run in turn ``repeats`` times, the order reversed every other repeat, so that a change of
machine load hits each alike. Variants (:func:`variants`): ``trainer=auto`` (the default),
then every explicit trainer of the device with its precision and layout switches. The
table gives each variant's steps/s per repeat and its median ratio to ``trainer=auto``;
``fastest`` names the fastest explicit variant and ``auto_within_5pct`` whether the default
is within 5% of it. ``quick``: the tiny model, 3 steps, the default and one explicit variant.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.options import BenchmarkConfig, BenchOptionError
from benchmarks.stylize import make_photos
from fast_style.devices import device_name, native_bf16, resolve_device

DEFAULT = "trainer=auto"
PHOTOS = 32


def variants(device: torch.device) -> list[str]:
    """The default, then the explicit trainer choices of ``device`` (overrides of train.py)."""
    if device.type == "cuda":
        return [DEFAULT, "trainer=gpu", "trainer=gpu trainer.precision=32-true channels_last=false"]
    explicit = ["trainer=cpu", "trainer=cpu trainer.precision=32-true",
                "trainer=cpu trainer.precision=32-true channels_last=false"]
    return [DEFAULT, *explicit]


def size_and_batch(options: BenchmarkConfig) -> tuple[int, int]:
    text = str(options.sizes[0])
    try:
        size, batch = (int(v) for v in text.split("x"))
    except ValueError as exc:
        raise BenchOptionError(f"sizes=[{text}]: part=trainers takes SIZExBATCH, e.g. sizes=[128x4]") from exc
    return size, batch


def run_variant(train_script: Path, overrides: str, *, data: Path, work: Path, size: int, batch: int,
                steps: int, seed: int, quick: bool) -> float:
    """steps/s of one train.py run with ``overrides`` (see the module docstring)."""
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    model = ["model=tiny"] if quick else []
    cmd = [sys.executable, str(train_script), *overrides.split(), *model, "style=demo", f"data.root={data}",
           "loss_net.pretrained=false", f"data.image_size={size}", f"data.resize={size}", f"data.batch_size={batch}",
           "data.num_workers=0", "data.num_samples=1", "~logger", "callbacks.style_samples.every_n_steps=0",
           "objective=none", f"trainer.max_steps={steps}", "trainer.enable_progress_bar=false",
           "trainer.enable_model_summary=false", f"seed={seed}", f"paths.root_dir={work}",
           f"hydra.run.dir={run_dir}", f"paths.output_dir={run_dir}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=work, check=False)
    finished = run_dir / "finished.json"
    if done.returncode != 0 or not finished.is_file():
        raise BenchOptionError(f"train.py {overrides} failed: {done.stderr.strip()[-600:]}")
    speed = json.loads(finished.read_text()).get("steps_per_s")
    if not speed:
        raise BenchOptionError(f"train.py {overrides}: no steps_per_s in {finished}")
    return float(speed)


def markdown(result: dict) -> str:
    rows = result["variants"]
    head = " | ".join(f"run {i + 1} steps/s" for i in range(len(rows[0]["steps_per_s"])))
    lines = [f"Device: {result['device']} (native bf16: {result['native_bf16']}), {result['size']} px x "
             f"{result['batch']}, {result['steps']} steps per run, torch {result['torch']}", "",
             f"| variant | {head} | median ratio to {DEFAULT} |",
             "|---|" + "---:|" * (len(rows[0]["steps_per_s"]) + 1)]
    for row in rows:
        speeds = " | ".join(f"{s:.3f}" for s in row["steps_per_s"])
        lines.append(f"| `{row['overrides']}` | {speeds} | {row['ratio_to_default']:.3f}x |")
    lines += ["", f"Fastest explicit choice: `{result['fastest']}`; the default is within 5% of it: "
                  f"{'yes' if result['auto_within_5pct'] else 'NO'}"]
    return "\n".join(lines)


def main(options: BenchmarkConfig) -> int:
    """Run every variant ``repeats`` times, print the table, write ``options.json``; 0."""
    if not options.project_dir or not (train_script := Path(options.project_dir) / "train.py").is_file():
        raise BenchOptionError(f"part=trainers runs train.py of project_dir={options.project_dir}: "
                               "give the checkout that holds it")
    size, batch = (32, 2) if options.quick else size_and_batch(options)
    steps = 3 if options.quick else int(options.steps)
    repeats = 1 if options.quick else int(options.repeats)
    device = resolve_device(options.device)
    chosen = variants(device)[:2] if options.quick else variants(device)
    speeds: dict[str, list[float]] = {v: [] for v in chosen}
    with tempfile.TemporaryDirectory(prefix="fast-style-trainers-") as tmp:
        work = Path(tmp)
        data = work / "photos"
        make_photos(data, count=8 if options.quick else PHOTOS, size=max(64, 2 * size),
                    seed=options.seed, sample_photos=options.sample_photos)
        for i in range(repeats):
            for overrides in chosen if i % 2 == 0 else chosen[::-1]:
                speeds[overrides].append(run_variant(train_script, overrides, data=data, work=work, size=size,
                                                     batch=batch, steps=steps, seed=options.seed, quick=options.quick))
                print(f"  repeat {i + 1}: {overrides}: {speeds[overrides][-1]:.3f} steps/s", file=sys.stderr, flush=True)
    default = speeds[DEFAULT]
    rows = [{"overrides": v, "steps_per_s": speeds[v],
             "ratio_to_default": statistics.median(s / d for s, d in zip(speeds[v], default, strict=True))}
            for v in chosen]
    explicit = [row for row in rows if row["overrides"] != DEFAULT]
    fastest = max(explicit, key=lambda row: statistics.median(row["steps_per_s"]))
    result = {"device": device_name(device), "native_bf16": native_bf16(device), "torch": torch.__version__,
              "size": size, "batch": batch, "steps": steps, "variants": rows, "fastest": fastest["overrides"],
              "auto_within_5pct": bool(fastest["ratio_to_default"] <= 1.05)}
    Path(options.json).write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print(f"\n(JSON: {options.json})")
    return 0
