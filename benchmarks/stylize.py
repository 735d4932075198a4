"""``stylize.py`` with its default options against a pytorch/examples-style eager loop, end to end.

    python scripts/benchmark.py part=stylize [photos=8] [sizes=[1024]] [repeats=2] [per_photo=true] [quick=true]

The paths are timed as whole processes, start-up included (Python, imports, loading
the model), on the same folder of photos and the same weights:

- reference: a loop like pytorch/examples' ``neural_style.py eval``, written here: load
  the network from the model file into :class:`~fast_style.nn.transformer.TransformerNet`,
  then for each photo open it with PIL, ``to_tensor``, ``model(x)`` under
  ``torch.no_grad()`` in eager fp32, clamp and save a PNG; in one process for all the
  photos, and (``per_photo``) in one process per photo, which is how pytorch/examples'
  command line, taking one photo per call, is run on a folder;
- fast: ``python stylize.py ckpt=<model> input=<folder> output=<folder> format=png``,
  no speed option (``runtime``/``precision`` auto), twice per repeat: ``cold`` with an
  empty start-up cache (``FAST_STYLE_CACHE``: a fresh folder, so it calibrates and exports
  as a first run does) and ``warm`` with the cache a previous run of the model left
  (:mod:`fast_style.inference.runners.startup_cache`; one untimed run fills it first).

Photos: ``photos`` JPEGs (quality 95) whose longer side is ``size``, made from the sample
photos of the data benchmark (``sample_photos``, else scikit-image's), else synthetic.
``stylize.py`` is the one in ``project_dir`` (scripts/benchmark.py passes its checkout). The model is a seeded
random paper-sized network (or ``ckpt``; a multi-style one runs one of its styles on both
paths, ``styles=``, else the first). The paths alternate ``repeats`` times; the
table gives each run's wall times, the speed-ups of the cold and the warm run (medians of the per-run ratios) and the
agreement of the outputs (PSNR, mean and max difference over all photos, 8-bit PNGs)
and stylize.py's lines on what it chose (a CPU with native bf16 may take bf16, whose
pixels may differ by more than float rounding while meeting the 40 dB bound).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.data import source_photos
from benchmarks.inference import style_argument, synthetic_photo
from benchmarks.options import BenchmarkConfig, BenchOptionError
from benchmarks.timing import time_once
from fast_style.devices import device_name, resolve_device
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import save_style_model
from fast_style.nn.transformer import TransformerNet

REFERENCE_LOOP = """
import sys, time
from pathlib import Path
start = time.perf_counter()
import torch
from PIL import Image
from torchvision.transforms.functional import to_pil_image, to_tensor
from fast_style.io.model_files import open_model
device = torch.device(sys.argv[4])
model = open_model(sys.argv[1]).require_network("the reference loop").eval().to(device)
out = Path(sys.argv[2])
style = torch.eye(model.num_styles, device=device)[int(sys.argv[3])] if sys.argv[3] else None
for photo in map(Path, sys.argv[5:]):
    x = to_tensor(Image.open(photo).convert("RGB")).unsqueeze(0).to(device)
    with torch.no_grad():
        y = model(x, style)
    to_pil_image(y[0].clamp(0, 1).cpu()).save(out / (photo.stem + ".png"))
"""


def make_photos(folder: Path, *, count: int, size: int, seed: int, sample_photos: str | Path | None) -> list[Path]:
    """``count`` JPEGs with longer side ``size``: the benchmark's sample photos
    (:func:`benchmarks.data.source_photos` of ``sample_photos``), cycled, or synthetic ones without them."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        sources = source_photos(sample_photos)
    except BenchOptionError:
        sources = []
    paths = []
    for i in range(count):
        if sources:
            image = sources[i % len(sources)]
            scale = size / max(image.size)
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                 Image.Resampling.LANCZOS)
        else:
            array = synthetic_photo(size * 3 // 4, size, seed=seed + i)[0].permute(1, 2, 0).numpy()
            image = Image.fromarray((array * 255).round().astype(np.uint8))
        path = folder / f"photo_{i:03d}.jpg"
        image.save(path, quality=95)
        paths.append(path)
    return paths


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """(wall seconds, stderr) of ``cmd`` (with ``env`` added to the environment); raises when it fails."""
    environment = {**os.environ, **(env or {})}
    seconds, done = time_once(lambda: subprocess.run(cmd, capture_output=True, text=True, check=False, env=environment))
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed: {done.stderr.strip()[-500:]}")
    return seconds, done.stderr


def choice_notes(stderr: str) -> list[str]:
    """stylize.py's lines about the runtime and precision it chose (none: fp32 as asked, or
    onnxruntime on a CPU without faster formats)."""
    return [line.strip() for line in stderr.splitlines() if line.startswith(("precision=auto:", "runtime=auto:"))]


def agreement(reference: Path, fast: Path) -> dict:
    """PSNR (dB; all photos' pixels together), mean and max |difference| in 1/255."""
    squared, absolute, worst, count = 0.0, 0.0, 0, 0
    for ref_path in sorted(reference.glob("*.png")):
        a = np.asarray(Image.open(ref_path).convert("RGB"), dtype=np.int32)
        b = np.asarray(Image.open(fast / ref_path.name).convert("RGB"), dtype=np.int32)
        d = a - b
        squared += float((d * d).sum())
        absolute += float(np.abs(d).sum())
        worst = max(worst, int(np.abs(d).max()))
        count += d.size
    mse = squared / count / 255**2
    return {"psnr_db": float("inf") if mse == 0 else float(10 * np.log10(1 / mse)),
            "mean_diff_255": absolute / count, "max_diff_255": worst}


def compare(model_path: Path, photos: Path, work: Path, *, stylize_script: Path, repeats: int,
            stylize_args: list[str], per_photo: bool, style: str = "", device: str = "cpu") -> dict:
    """Alternating timed runs of the reference loop (one process), optionally the reference
    as one process per photo (how pytorch/examples' CLI, which takes one photo, is run on a
    folder), and stylize.py cold and warm (see the module docstring); the speed-ups are
    against the one-process loop. ``style``: the index of a multi-style model's style both
    run ("" for a one-style model); ``stylize_script``: the ``stylize.py`` to run; ``device``:
    where the reference loop runs (pytorch/examples' ``--cuda 1`` on a GPU; stylize.py picks its own)."""
    ref_out, per_out, fast_out = work / "reference", work / "per_photo", work / "fast"
    files = [str(p) for p in sorted(photos.iterdir())]
    reference = [[sys.executable, "-c", REFERENCE_LOOP, str(model_path), str(ref_out), style, device, *files]]
    one_each = [[sys.executable, "-c", REFERENCE_LOOP, str(model_path), str(per_out), style, device, f]
                for f in files]
    fast = [sys.executable, str(stylize_script), f"ckpt={model_path}", f"input={photos}", f"output={fast_out}",
            "format=png", "progress=false", *stylize_args, *([f"styles={style}"] if style else [])]
    warm_cache = work / "warm-cache"
    timed([*fast[:4], f"output={work / 'warming'}", *fast[5:]], {"FAST_STYLE_CACHE": str(warm_cache)})
    paths = [("reference", reference, None), ("cold", [fast], "cold"), ("warm", [fast], "warm")]
    paths += [("per_photo", one_each, None)] if per_photo else []
    runs, notes = [], {}
    for i in range(repeats):
        # alternate the order, so that a change in machine load hits every path alike
        order = paths if i % 2 == 0 else paths[::-1]
        seconds = {}
        for name, cmds, cache in order:
            for folder in (ref_out, per_out, fast_out):
                shutil.rmtree(folder, ignore_errors=True)
            ref_out.mkdir(parents=True)
            per_out.mkdir(parents=True)
            env = None if cache is None else {
                "FAST_STYLE_CACHE": str(warm_cache if cache == "warm" else work / f"cold-cache-{i}")}
            timings = [timed(cmd, env) for cmd in cmds]
            seconds[name] = sum(t for t, _ in timings)
            if cache is not None:
                notes[name] = choice_notes(timings[0][1])
                shutil.copytree(fast_out, work / f"kept-{name}", dirs_exist_ok=True)
            if name == "reference":
                shutil.copytree(ref_out, work / "kept-reference", dirs_exist_ok=True)
        runs.append({**seconds, "speedup_cold": seconds["reference"] / seconds["cold"],
                     "speedup_warm": seconds["reference"] / seconds["warm"]})
        if per_photo:
            runs[-1]["speedup_per_photo"] = seconds["per_photo"] / seconds["warm"]
        print(f"  run {i + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
              + f", cold x{runs[-1]['speedup_cold']:.2f}, warm x{runs[-1]['speedup_warm']:.2f}", file=sys.stderr, flush=True)
    return {"runs": runs, "speedup_cold": statistics.median(r["speedup_cold"] for r in runs),
            "speedup_warm": statistics.median(r["speedup_warm"] for r in runs), "stylize_notes": notes,
            "cold": agreement(work / "kept-reference", work / "kept-cold"),
            "warm": agreement(work / "kept-reference", work / "kept-warm")}


def markdown(result: dict) -> str:
    lines = [
        f"Device: {result['device']} (reference loop on {result.get('reference_device', 'cpu')}; "
        f"{result['cpu_capability']}, {result['threads']} threads), torch {result['torch']}; "
        f"{result['photos']} photos, longer side {result['size']} px; stylize.py {' '.join(result['stylize_args']) or '(defaults)'}",
        "",
        "| run | reference loop s | one process per photo s | stylize.py cold s | warm s | cold vs loop "
        "| warm vs loop | warm vs per photo |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(result["runs"], 1):
        per = (f"{r['per_photo']:.1f} | ", f"{r['speedup_per_photo']:.2f}x") if "per_photo" in r else ("- | ", "-")
        lines.append(f"| {i} | {r['reference']:.1f} | {per[0]}{r['cold']:.1f} | {r['warm']:.1f} | "
                     f"{r['speedup_cold']:.2f}x | {r['speedup_warm']:.2f}x | {per[1]} |")
    lines += ["", f"Median speed-up cold {result['speedup_cold']:.2f}x, warm {result['speedup_warm']:.2f}x."]
    for name in ("cold", "warm"):
        same = result[name]
        lines.append(f"{name} outputs against the loop's: PSNR {same['psnr_db']:.1f} dB, mean difference "
                     f"{same['mean_diff_255']:.3f}/255, max {same['max_diff_255']}/255 (8-bit PNGs)")
        lines += [f"stylize.py ({name}) said: {note}" for note in result["stylize_notes"].get(name, [])]
    return "\n".join(lines)


def main(options: BenchmarkConfig) -> int:
    """Run the comparison, print the table, write ``options.json``; 0."""
    size = 128 if options.quick else int(options.sizes[0])
    count = 2 if options.quick else int(options.photos)
    repeats = 1 if options.quick else int(options.repeats)
    if not options.project_dir or not (stylize_script := Path(options.project_dir) / "stylize.py").is_file():
        raise BenchOptionError(f"part=stylize runs stylize.py of project_dir={options.project_dir}: "
                               "give the checkout that holds it")
    with tempfile.TemporaryDirectory(prefix="fast-style-e2e-") as tmp:
        work = Path(tmp)
        style = ""
        if options.ckpt:
            model_path = Path(options.ckpt).resolve()
            style = style_argument(model_path, options.styles)
        else:
            torch.manual_seed(options.seed)
            model_path = save_style_model(TransformerNet(), work / "random.safetensors",
                                          metadata=StyleModelMetadata(style_name="random"))
        make_photos(work / "photos", count=count, size=size, seed=options.seed,
                    sample_photos=options.sample_photos)
        stylize_args = [f"precision={options.precision}"] if options.precision != "auto" else []
        device = resolve_device(options.device)
        result = {
            "device": device_name(device),
            "reference_device": str(device),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "photos": count,
            "size": size,
            "stylize_args": stylize_args,
            **compare(model_path, work / "photos", work, stylize_script=stylize_script, repeats=repeats, stylize_args=stylize_args,
                      per_photo=bool(options.per_photo) and not options.quick, style=style,
                      device=str(device)),
        }
    Path(options.json).write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print(f"\n(JSON: {options.json})")
    return 0
