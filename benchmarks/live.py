"""live.py's frames/s at 640x480: what the runner sustains, and what a viewer sees.

    python scripts/benchmark.py part=live [ckpt=checkpoints/demo_swirls.safetensors] [sizes=[640x480]]
                                          [seconds=[10]] [quick=true]

A synthetic clip (:func:`benchmarks.video.make_clip`: a slow pan over a synthetic photo, 30
frames/s, ``seconds[0]`` long, ``sizes[0]``) is played by ``python live.py`` (the one in
``project_dir``) twice, in fresh processes, with its default runner choice
(runtime/precision auto) and ``output=discard`` (no encoder beside the runner):

- ``realtime=false``: every frame, as fast as the runner goes (throughput);
- ``realtime=true``: the clip at its own 30 frames/s; frames the runner cannot keep up with
  are dropped (what a viewer of a camera sees), with the drop rate.

Each row is the run's ``summary=`` JSON: frames/s stylized after the first frame, the
source's rate over the same span, frames read, stylized and dropped, start-up (to the first
stylized frame) and peak memory. Without ``ckpt`` the model is a seeded random paper-sized net.
``quick=true``: a 2 s 320x240 clip.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.options import BenchmarkConfig, BenchOptionError
from benchmarks.stylize import choice_notes
from benchmarks.video import _size, make_clip, model_file_and_style


def play(project: Path, model: Path, clip: Path, folder: Path, *, realtime: bool, style: str) -> dict:
    """One ``live.py`` run's summary (and what it chose)."""
    summary = folder / f"summary-{realtime}.json"
    args = [sys.executable, str(project / "live.py"), f"ckpt={model}", f"source={clip}", "output=discard",
            f"realtime={str(realtime).lower()}", f"summary={summary}", "progress=false"]
    if style:
        args.append(f"style={style}")
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchOptionError(f"live.py failed: {result.stderr.strip().splitlines()[-1:]}")
    return {**json.loads(summary.read_text()), "notes": choice_notes(result.stderr)}


def main(options: BenchmarkConfig) -> int:
    width, height = (320, 240) if options.quick else _size(options.sizes[0])
    seconds = 2.0 if options.quick else float((options.seconds or [10])[0])
    project = Path(options.project_dir or Path.cwd())
    rows = []
    with tempfile.TemporaryDirectory(prefix="fast-style-bench-live-") as tmp:
        folder = Path(tmp)
        model, style = model_file_and_style(options, folder)
        clip = make_clip(folder / f"clip_{width}x{height}.mp4", width=width, height=height, seconds=seconds)
        for realtime in (False, True):
            got = play(project, model, clip, folder, realtime=realtime, style=style)
            rows.append({"realtime": realtime, **{k: got[k] for k in (
                "fps", "source_fps", "frames_read", "stylized", "dropped", "startup_s", "seconds", "peak_rss_mb",
                "runner", "notes")}})
            print(f"realtime={str(realtime).lower()}: {got['fps']:.2f} frames/s stylized, source "
                  f"{got['source_fps']:.1f}, dropped {got['dropped']}/{got['frames_read']}"
                  + "".join(f"; {n}" for n in got["notes"]), flush=True)
    print(f"\n{Path(str(model)).name if options.ckpt else 'random paper net'}, {width}x{height}, {seconds:g} s at 30 "
          "frames/s, output=discard\n")
    print("| realtime | frames/s stylized | source frames/s | read | stylized | dropped | start-up | peak memory |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        share = r["dropped"] / r["frames_read"] if r["frames_read"] else 0
        print(f"| {str(r['realtime']).lower()} | {r['fps']:.2f} | {r['source_fps']:.1f} | {r['frames_read']} | "
              f"{r['stylized']} | {r['dropped']} ({share:.0%}) | {r['startup_s']:.1f} s | {r['peak_rss_mb']:.0f} MB |")
    report = {"part": "live", "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "size": f"{width}x{height}", "seconds": seconds, "ckpt": options.ckpt, "rows": rows}
    Path(options.json).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {options.json}")
    return 0
