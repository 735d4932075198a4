"""``make gpu-check`` (``scripts/benchmark.py part=gpu``): what one CUDA GPU does with this
project, in one run (docs/gpu.md).

    python scripts/benchmark.py part=gpu                    # on a CUDA machine: ~6-8 min on one H200
    python scripts/benchmark.py part=gpu quick=true         # a short smoke run of every row
    python scripts/benchmark.py part=gpu device=cpu quick=true  # the same code on the CPU, tiny sizes (tests)

``scripts/gpu_check.py KEY=VALUE ...`` is the same command under its older name. The keys
this part reads: the ``gpu`` row of :mod:`benchmarks.options`.

Measured (each: ``warmup`` untimed calls, then ``steps`` calls between two
``torch.cuda.synchronize()``; peak memory reset before each timed region,
:mod:`benchmarks.timing`):

1. Training steps/s at ``train_size`` px, batch ``train_batch``, for each of
   ``train_variants`` (fp32, bf16-mixed, bf16-mixed + torch.compile, ...), fed by
   synthetic tensors already on the GPU and by the real DataModule reading the photo
   folder and its prepared shards (``feeds``; :mod:`benchmarks.gpu_train`); and each
   loader alone.
2. Reduced precisions against fp32 (PSNR, mean difference) and what ``precision=auto``
   picks, at the first stylize size.
3. Stylize images/s and MP/s at each of ``stylize_sizes`` for each of
   ``stylize_variants`` (fp32, bf16, fp16, compile, CUDA graphs, tiled), on the device
   and from host to host (:mod:`benchmarks.gpu_stylize`).

Writes ``json`` and ``markdown`` and prints the tables. Without CUDA (and ``device=auto``)
it prints one line and measures nothing. ``time_budget_s`` bounds the run: measurements
that would start after it are listed as skipped.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.options import BenchmarkConfig, BenchOptionError
from benchmarks.variants import Variant, parse_variant
from fast_style.devices import device_name, resolve_device
from fast_style.io.files import atomic_write_text

# Lightning, the data and inference modules are imported where they are used, so that
# the one line without CUDA comes after the import of torch alone.


def no_cuda_line() -> str:
    """The one line printed where there is no CUDA device."""
    build = torch.version.cuda or "none"
    version = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    return f"gpu-check: no CUDA device here (torch {version}, CUDA build {build}); nothing measured"


@dataclass
class Plan:
    """What one run measures, after ``quick`` and the device are applied."""

    device: torch.device
    model: dict
    train_size: int
    train_batch: int
    train_variants: list[Variant]
    train_warmup: int
    train_steps: int
    data_images: int
    num_workers: int
    feeds: list[str]
    loader_batches: int
    stylize_sizes: list[tuple[int, int]]
    stylize_variants: list[Variant]
    stylize_warmup: int
    stylize_steps: int
    skipped: list[str]


def make_plan(options: BenchmarkConfig, device: torch.device) -> Plan:
    """Options -> :class:`Plan`: variants parsed, those the device cannot run set aside
    (listed in ``skipped``), and ``quick`` applied (off CUDA also tiny sizes and net)."""
    from benchmarks.gpu_stylize import parse_size
    from benchmarks.training import PAPER_MODEL, QUICK_MODEL

    if options.train_steps < 1 or options.stylize_steps < 1 or options.tiled_steps < 1:
        raise BenchOptionError("train_steps, stylize_steps and tiled_steps must be at least 1")
    from benchmarks.gpu_train import DATA_KINDS

    if unknown := [d for d in options.feeds if d not in DATA_KINDS]:
        raise BenchOptionError(f"feeds={unknown}: each feed is one of {', '.join(DATA_KINDS)} (synthetic always runs)")
    train = [parse_variant(v, allowed=("compile", "cudnn")) for v in options.train_variants]
    stylize = [parse_variant(v, allowed=("compile", "cudagraphs", "tiled")) for v in options.stylize_variants]
    skipped = [f"{v.name}: {why}" for v in [*train, *stylize] if (why := v.unsupported_on(device.type))]
    plan = Plan(
        device=device, model=dict(PAPER_MODEL), train_size=options.train_size, train_batch=options.train_batch,
        train_variants=[v for v in train if not v.unsupported_on(device.type)],
        train_warmup=options.train_warmup, train_steps=options.train_steps, data_images=options.data_images,
        num_workers=options.num_workers, feeds=list(options.feeds), loader_batches=options.loader_batches,
        stylize_sizes=[parse_size(s) for s in options.stylize_sizes],
        stylize_variants=[v for v in stylize if not v.unsupported_on(device.type)],
        stylize_warmup=options.stylize_warmup, stylize_steps=options.stylize_steps, skipped=skipped,
    )
    if options.quick:
        plan.train_warmup, plan.train_steps = min(plan.train_warmup, 3), min(plan.train_steps, 10)
        plan.stylize_warmup, plan.stylize_steps = min(plan.stylize_warmup, 2), min(plan.stylize_steps, 5)
        plan.loader_batches, plan.data_images = min(plan.loader_batches, 20), min(plan.data_images, 40)
        plan.stylize_sizes = [s for s in plan.stylize_sizes if s[0] * s[1] <= 1024 * 1024] or plan.stylize_sizes[:1]
        if device.type != "cuda":
            plan.model, plan.train_size, plan.train_batch = dict(QUICK_MODEL), 32, 2
            plan.train_warmup, plan.train_steps, plan.stylize_warmup, plan.stylize_steps = 1, 2, 1, 2
            plan.stylize_sizes, plan.data_images, plan.num_workers, plan.loader_batches = [(64, 48)], 8, 0, 4
    return plan


def release(device: torch.device) -> None:
    """Hand the finished measurement's cached blocks back, so the next one starts clean."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_plan(plan: Plan, options: BenchmarkConfig, *, save: Callable[[dict[str, Any]], None] | None = None
             ) -> dict[str, Any]:
    """Measure everything in ``plan``; the report as a JSON-able dict. ``save(report)`` is
    called after each measurement, so a run cut short keeps what it measured."""
    from benchmarks import gpu_stylize, gpu_train

    started = time.perf_counter()

    def in_budget(what: str) -> bool:
        if time.perf_counter() - started <= options.time_budget_s:
            return True
        plan.skipped.append(f"{what}: time_budget_s={options.time_budget_s:g} spent")
        return False

    report: dict[str, Any] = {"train": [], "loaders": [], "stylize": [], "precision": None}

    def measured() -> None:
        report["seconds"] = time.perf_counter() - started
        if save is not None:
            save(report)

    with tempfile.TemporaryDirectory(prefix="fast-style-gpu-check-") as tmp:
        root = options.data_root
        if root is None:
            print(f"drawing {plan.data_images} 640x480 JPEGs into a temporary folder ...", flush=True)
            root = gpu_train.write_photos(Path(tmp) / "photos", count=plan.data_images, seed=options.seed)
        datamodules = {}
        for data in plan.feeds:
            if data == "shards":
                print(f"preparing shards of {root} at {plan.train_size} px ...", flush=True)
            datamodules[data] = gpu_train.make_datamodule(root, size=plan.train_size, batch=plan.train_batch,
                                                          num_workers=plan.num_workers, data=data,
                                                          shard_folder=Path(tmp) / "shards")
            print(f"loader alone, {data}: {plan.loader_batches} batches ...", flush=True)
            report["loaders"].append(gpu_train.time_loader(datamodules[data], data=data,
                                                           warmup=min(plan.loader_batches, 5),
                                                           batches=plan.loader_batches))
        measured()
        for variant in plan.train_variants:
            if not in_budget(f"training {variant.name}"):
                continue
            print(f"training {variant.name}: {plan.train_size} px, batch {plan.train_batch} ...", flush=True)
            report["train"] += gpu_train.measure_variant(
                variant, model=plan.model, size=plan.train_size, batch=plan.train_batch, device=plan.device,
                seed=options.seed, warmup=plan.train_warmup, steps=plan.train_steps, datamodules=datamodules)
            release(plan.device)
            measured()
    network = gpu_stylize.seeded_network(plan.model, seed=options.seed)
    if in_budget("precision agreement"):
        print("precision: reduced precisions against fp32, and what precision=auto picks ...", flush=True)
        report["precision"] = gpu_stylize.precision_agreement(network, size=plan.stylize_sizes[0], device=plan.device,
                                                              seed=options.seed)
        measured()
    for variant in plan.stylize_variants:
        if not in_budget(f"stylize {variant.name}"):
            continue
        print(f"stylize {variant.name}: {', '.join(f'{w}x{h}' for w, h in plan.stylize_sizes)} ...", flush=True)
        report["stylize"] += gpu_stylize.measure_variant(
            variant, network=network, sizes=plan.stylize_sizes, batch=options.stylize_batch, device=plan.device,
            seed=options.seed, warmup=plan.stylize_warmup, steps=plan.stylize_steps, tiled_steps=options.tiled_steps)
        release(plan.device)
        measured()
    report["seconds"] = time.perf_counter() - started
    return report


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def markdown(report: dict[str, Any]) -> str:
    """The report's tables (training, loader, stylizing) as markdown."""
    lines = [f"gpu-check on {report['device_name']} (torch {report['torch']}, CUDA {report['cuda']}); "
             f"model {report['model']}", "",
             f"Training, {report['train_size']} px, batch {report['train_batch']}:", "",
             "| variant | data | steps/s | images/s | ms/step | peak MB | loader wait | vs synthetic |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["train"]:
        vs = f"{r['vs_synthetic']:.2f}x" if "vs_synthetic" in r else "-"
        wait = f"{100 * r['loader_wait']:.0f} %" if r["data"] != "synthetic" else "-"
        lines.append(f"| {r['variant']} | {r['data']} | {r['steps_per_s']:.1f} | {r['images_per_s']:.1f} "
                     f"| {r['ms_per_step']:.1f} | {_mb(r['peak_mb'])} | {wait} | {vs} |")
    if report["loaders"]:
        lines += ["", "Loader alone:", "", "| data | workers | images/s | images/s per worker | batches/s |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['data']} | {r['workers']} | {r['images_per_s']:.0f} | {r['images_per_s_per_worker']:.0f} "
                  f"| {r['batches_per_s']:.1f} |" for r in report["loaders"]]
    lines += ["", "Stylizing:", "",
              "| variant | size | batch | path | images/s | MP/s | ms/image | peak MB |",
              "|---|---|---|---|---|---|---|---|"]
    for r in report["stylize"]:
        lines.append(f"| {r['variant']} | {r['size']} | {r['batch']} | {r['path']} | {r['images_per_s']:.2f} "
                     f"| {r['mp_per_s']:.1f} | {r['ms_per_image']:.1f} | {_mb(r['peak_mb'])} |")
    accuracy = report.get("precision")
    if accuracy:
        lines += ["", f"Precision against fp32, {accuracy['size']} (bound: PSNR >= 40 dB and mean <= 1/255):", "",
                  "| precision | PSNR dB | mean diff /255 | within bound |", "|---|---|---|---|"]
        lines += [f"| {r['precision']} | {r['psnr_db']:.1f} | {r['mean_diff_255']:.2f} | {r['within_bound']} |"
                  for r in accuracy["rows"]]
        lines += ["", f"precision=auto picks {accuracy['auto']} here."]
    if not report.get("finished", True):
        lines += ["", "**Unfinished**: the run stopped before every measurement was taken."]
    if report["skipped"]:
        lines += ["", "Skipped: " + "; ".join(report["skipped"]) + "."]
    lines += ["", "device: network only, input already on the device; host: float32 CPU batch in, "
                  "clamped float32 CPU batch out (as stylize.py). Peak MB: torch.cuda.max_memory_allocated "
                  "during the timed calls."]
    return "\n".join(lines)


def main(options: BenchmarkConfig) -> int:
    """Run the check (see the module docstring); 0 also where there is no CUDA device."""
    if options.device == "auto" and not torch.cuda.is_available():
        print(no_cuda_line(), flush=True)
        return 0
    device = resolve_device("cuda" if options.device == "auto" else options.device)
    plan = make_plan(options, device)
    header = {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__, "cuda": torch.version.cuda, "cpu_count": os.cpu_count(), "quick": options.quick,
        "model": plan.model, "train_size": plan.train_size, "train_batch": plan.train_batch,
        "options": asdict(options),
    }

    def save(measured: dict[str, Any], *, finished: bool = False) -> dict[str, Any]:
        report = {**header, **measured, "skipped": plan.skipped, "finished": finished}
        report["table"] = markdown(report)
        atomic_write_text(options.json, json.dumps(report, indent=2))
        atomic_write_text(options.markdown, report["table"] + "\n")
        return report

    report = save(run_plan(plan, options, save=save), finished=True)
    print(report["table"])
    print(f"wrote {options.json} and {options.markdown}")
    return 0

