"""Video stylizing: frames per second and peak memory for clips of growing length.

    python scripts/benchmark.py part=video [sizes=[1280x720]] [seconds=[5,10,20]] [quick=true]

For each length a 30 fps clip with an AAC sound track is generated (a slow pan and zoom
over a synthetic photo), then stylized with ``fast_style.stylize`` (``batch_size=4``)
in a fresh child process, which reports its frames per second and its peak resident
memory (``ru_maxrss``). Streaming means the peak must not grow with the length: the
table gives each clip's peak and the ratio of the longest clip's to the shortest's.
Without ``ckpt`` the model is a seeded, randomly initialised paper-sized TransformerNet;
a multi-style ``ckpt`` runs one of its styles (``styles=``, else the first).
``quick=true``: 320x180 clips of 1, 2 and 4 s.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.inference import style_argument, synthetic_photo
from benchmarks.options import BenchmarkConfig, BenchOptionError
from benchmarks.stylize import choice_notes
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import save_style_model
from fast_style.io.video import require_av
from fast_style.nn.transformer import TransformerNet

FPS = 30
CHILD = """
import json, resource, sys, time
import fast_style
start = time.perf_counter()
summary = fast_style.stylize(sys.argv[1], sys.argv[2], output=sys.argv[3], batch_size=4, precision=sys.argv[4],
                             style=sys.argv[5] or None, progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "counts": summary.counts(), "detail": summary.outcomes[0].detail,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_clip(path: Path, *, width: int, height: int, seconds: float, fps: int = FPS) -> Path:
    """A clip of a slow pan and zoom over a synthetic photo, H.264 + AAC, ``seconds`` long."""
    av = require_av()
    frames = round(seconds * fps)
    photo = (synthetic_photo(int(height * 1.3), int(width * 1.3))[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "23", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=48000)
        for i in range(frames):
            t = i / max(1, frames - 1)
            y, x = int(t * (photo.shape[0] - height)), int(t * (photo.shape[1] - width))
            rgb = np.ascontiguousarray(photo[y:y + height, x:x + width])
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        samples = 48000 * frames // fps
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None]
        size = sound.codec_context.frame_size or 1024
        for start in range(0, samples, size):
            frame = av.AudioFrame.from_ndarray(tone[:, start:start + size], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            for packet in sound.encode(frame):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
    return path


def _size(text: object) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in str(text).lower().split("x"))
    except ValueError as exc:
        raise BenchOptionError(f"sizes={text}: the video part takes WIDTHxHEIGHT, e.g. [1280x720]") from exc
    return width, height


def measure(model: Path, clip: Path, output: Path, precision: str, style: str = "") -> dict:
    """Stylize ``clip`` in a fresh process (``style``: which of a multi-style model's styles,
    "" for a one-style model): its seconds, counts, peak memory and ``notes``, what
    ``precision``/``runtime`` auto chose (a choice changes both the speed and the memory)."""
    result = subprocess.run([sys.executable, "-c", CHILD, str(model), str(clip), str(output), precision, style],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchOptionError(f"stylizing {clip.name} failed: {result.stderr.strip().splitlines()[-1:]}")
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "notes": choice_notes(result.stderr)}


def model_file_and_style(options: BenchmarkConfig, folder: Path) -> tuple[Path, str]:
    """The model file a command-line benchmark runs (``ckpt``, with its ``style=`` argument), or
    without one a seeded random paper-sized net saved into ``folder`` (style argument "")."""
    if options.ckpt:
        model = Path(options.ckpt)
        return model, style_argument(model, options.styles)
    torch.manual_seed(options.seed)
    return save_style_model(TransformerNet().eval(), folder / "paper.safetensors",
                            metadata=StyleModelMetadata(style_name="random")), ""


def main(options: BenchmarkConfig) -> int:
    sizes = [_size(s) for s in (["320x180"] if options.quick else options.sizes)]
    lengths = [1.0, 2.0, 4.0] if options.quick else [float(s) for s in (options.seconds or [5, 10, 20])]
    rows = []
    with tempfile.TemporaryDirectory(prefix="fast-style-bench-video-") as tmp:
        folder = Path(tmp)
        model, style = model_file_and_style(options, folder)
        for width, height in sizes:
            for seconds in lengths:
                clip = make_clip(folder / f"clip_{width}x{height}_{seconds:g}s.mp4", width=width, height=height,
                                 seconds=seconds)
                got = measure(model, clip, folder / f"out_{clip.name}", options.precision, style)
                frames = round(seconds * FPS)
                rows.append({"size": f"{width}x{height}", "seconds": seconds, "frames": frames,
                             "fps": frames / got["seconds"], "peak_mb": got["peak_mb"], "detail": got["detail"],
                             "notes": got["notes"]})
                print(f"{width}x{height} {seconds:g} s: {rows[-1]['fps']:.2f} frames/s, peak {got['peak_mb']:.0f} MB"
                      + "".join(f"; {note}" for note in got["notes"]), flush=True)
    print("\n| clip | frames | frames/s | peak memory |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['size']}, {row['seconds']:g} s | {row['frames']} | {row['fps']:.2f} | {row['peak_mb']:.0f} MB |")
    for size in {r["size"] for r in rows}:
        same = [r for r in rows if r["size"] == size]
        print(f"\n{size}: peak memory of the {same[-1]['seconds']:g} s clip / the {same[0]['seconds']:g} s clip = "
              f"{same[-1]['peak_mb'] / same[0]['peak_mb']:.2f}")
    report = {"part": "video", "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "precision": options.precision, "rows": rows}
    Path(options.json).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {options.json}")
    return 0
