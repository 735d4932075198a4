"""The format=web page in headless Chromium on this machine's CPU (onnxruntime-web, wasm).

    python scripts/benchmark.py part=web [ckpt=MODEL] [sizes=[1024]] [seconds=[10]] [quick=true] [json=...]

The model (``ckpt``; else the checkout's ``checkpoints/demo_swirls.safetensors``; else a seeded
random paper-sized TransformerNet) is exported with :func:`fast_style.io.web_export.export_web`
(onnxruntime-web from $FAST_STYLE_ORT_WEB or ``build/web-deps/node_modules/onnxruntime-web``,
where .ci/run installs it; no network) and served from a thread in two ways: as
``python -m http.server`` serves it (not cross-origin isolated: wasm on one thread), and with
COOP/COEP headers (isolated: wasm threads, one per core up to 8). For each:

- webcam: Chromium's fake camera plays a 640x480 clip (a y4m written here); frames/s is the
  page's own count of finished frames over at least ``seconds[0]`` and :data:`MIN_FRAMES`
  frames, after two warm-up frames;
- photo: ``fastStyle.stylize`` of a ``size`` x ``size`` PNG (the page's ``lastMs``: read the
  pixels, run, finish, draw; mean of 2 after one warm-up).

Side by side, in this process: onnxruntime (Python, CPU provider, fp32 model, default threads) on
the same sizes, so the ratio says what the browser costs over native onnxruntime. WebGPU is not
measured (headless Chromium here has no GPU adapter); docs/gpu.md estimates it on paper.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.inference import synthetic_photo
from benchmarks.options import BenchmarkConfig
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import open_model, save_style_model
from fast_style.io.web_export import ORT_VERSION, ExportError, export_web, find_ort_dist
from fast_style.io.web_serve import serve_folder
from fast_style.nn.transformer import TransformerNet

CAMERA = (640, 480)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-swiftshader"]
MIN_FRAMES = 3
DEMO = Path("checkpoints") / "demo_swirls.safetensors"


def write_y4m(path: Path, frames: np.ndarray, fps: int = 30) -> Path:
    """(T, H, W, 3) uint8 RGB as a YUV4MPEG2 4:2:0 clip (full-range BT.601), what Chromium's fake camera plays."""
    t, h, w, _ = frames.shape
    rgb = frames.astype(np.float32)
    planes = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2],
              -0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2] + 128,
              0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2] + 128)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for k in range(t):
            f.write(b"FRAME\n")
            for i, plane in enumerate(planes):
                p = plane[k] if i == 0 else plane[k].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
                f.write(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes())
    return path


def camera_clip(path: Path, count: int = 30) -> Path:
    """A synthetic 640x480 clip: colour waves drifting sideways."""
    w, h = CAMERA
    base = (synthetic_photo(h, w + count * 4, seed=7)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    return write_y4m(path, np.stack([base[:, 4 * k:4 * k + w] for k in range(count)]))


def _model(options: BenchmarkConfig, folder: Path) -> tuple[Path, str]:
    ckpt = options.ckpt
    if not ckpt and not options.quick and options.project_dir and (Path(options.project_dir) / DEMO).is_file():
        ckpt = str(Path(options.project_dir) / DEMO)
    if ckpt:
        return Path(ckpt), Path(ckpt).name
    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual=1) if options.quick else TransformerNet()
    path = save_style_model(net.eval(), folder / "random.safetensors", metadata=StyleModelMetadata(style_name="random"))
    return path, "random paper-sized TransformerNet (seed 0)" if not options.quick else "random tiny net"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = os.environ.get("FAST_STYLE_CHROMIUM") or shutil.which(name)
        if found:
            return found
    raise ExportError("part=web needs a Chromium (apt-get install chromium, or set FAST_STYLE_CHROMIUM)")


def _ort_dist(options: BenchmarkConfig) -> Path:
    named = os.environ.get("FAST_STYLE_ORT_WEB") or str(
        Path(options.project_dir or ".") / "build" / "web-deps" / "node_modules" / "onnxruntime-web")
    return find_ort_dist(named)


def _in_browser(url: str, clip: Path, sizes: list[int], seconds: float) -> dict:
    """The page's webcam frames/s and photo latencies (own thread: Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=[
            *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}",
            "--use-fake-ui-for-media-stream"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "index.html")
            state = page.evaluate("async () => { const s = await fastStyle.ready; "
                                  "return {error: s.error, backend: s.backend, threads: s.threads}; }")
            if state["error"]:
                raise ExportError(f"the page says: {state['error']}")
            photos = {}
            for size in sizes:
                times = []
                for _ in range(3):
                    page.evaluate(f"fastStyle.stylize('photo-{size}.png')")
                    times.append(page.evaluate("fastStyle.lastMs"))
                photos[size] = {"ms": statistics.median(times[1:]), "runs_ms": times}
            page.click("#camera")
            page.wait_for_function("fastStyle.frames >= 2 || fastStyle.error", timeout=120_000, polling=50)
            start_frames, start = page.evaluate("fastStyle.frames"), time.monotonic()
            page.wait_for_timeout(seconds * 1000)
            page.wait_for_function(f"fastStyle.frames >= {start_frames + MIN_FRAMES} || fastStyle.error",
                                   timeout=300_000, polling=50)
            frames, elapsed = page.evaluate("fastStyle.frames") - start_frames, time.monotonic() - start
            size = page.evaluate("[document.getElementById('video').videoWidth, document.getElementById('video').videoHeight]")
            error = page.evaluate("fastStyle.error")
            if error:
                raise ExportError(f"the page says: {error}")
        finally:
            browser.close()
    return {**state, "camera": {"size": size, "frames": frames, "seconds": elapsed, "fps": frames / elapsed},
            "photos": photos}


def _onnxruntime_python(folder: Path, sizes: list[int]) -> dict:
    """ms of onnxruntime (Python) on the folder's model at the camera size and ``sizes`` (median of 3)."""
    run = open_model(folder / "model.onnx", device="cpu").runtime
    out = {}
    for label, (h, w) in [("camera", CAMERA[::-1]), *[(str(s), (s, s)) for s in sizes]]:
        x = synthetic_photo(h, w, seed=1)
        run(x)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - t)
        out[label] = statistics.median(times) * 1e3
    return out


def markdown(result: dict) -> str:
    py = result["onnxruntime_python_ms"]
    sizes = list(result["modes"][0]["photos"])
    lines = [
        f"Device: {result['device']} ({result['cores']} cores), Chromium {result['chromium']}, onnxruntime-web "
        f"{result['ort_web']} (wasm), model: {result['model']} ({result['precision']} weights, "
        f"{result['model_mb']:.2f} MB); beside it onnxruntime (Python) {result['onnxruntime']}, CPU, fp32",
        "",
        "| serving | wasm threads | webcam 640x480 frames/s | ms / frame | vs onnxruntime (Python) "
        + "".join(f"| photo {s}x{s} ms | vs onnxruntime (Python) " for s in sizes) + "|",
        "|---|---:|---:|---:|---:" + "|---:|---:" * len(sizes) + "|",
    ]
    for mode in result["modes"]:
        cam = mode["camera"]
        ms = 1000 / cam["fps"] if cam["fps"] > 0 else float("inf")
        row = f"| {mode['serving']} | {mode['threads']} | {cam['fps']:.2f} | {ms:.0f} | {ms / py['camera']:.2f}x "
        row += "".join(f"| {p['ms']:.0f} | {p['ms'] / py[str(s)]:.2f}x " for s, p in mode["photos"].items())
        lines.append(row + "|")
    lines.append("")
    lines.append("onnxruntime (Python) ms: 640x480 " + f"{py['camera']:.0f}"
                 + "".join(f", {s}x{s} {py[str(s)]:.0f}" for s in sizes))
    return "\n".join(lines)


def screenshot(options: BenchmarkConfig) -> int:
    """``screenshot=PATH``: the page (the model as in the measurements) showing scikit-image's
    astronaut stylized, taken by headless Chromium; JPEG (quality 85) or PNG by the suffix."""
    from skimage import data

    target = Path(options.screenshot)
    with tempfile.TemporaryDirectory(prefix="fast-style-web-") as tmp:
        tmp = Path(tmp)
        ckpt, label = _model(options, tmp)
        from fast_style.inference.precision import Agreement

        exported = export_web(ckpt, tmp / "site", ort_dist=_ort_dist(options), judge=Agreement.of)
        Image.fromarray(data.astronaut()).resize((448, 448), Image.LANCZOS).save(exported.folder / "astronaut.png")
        with serve_folder(exported.folder) as url, ThreadPoolExecutor(1) as pool:
            pool.submit(_shoot, url + "index.html?image=astronaut.png", tmp / "shot.png").result(timeout=600)
        image = Image.open(tmp / "shot.png").convert("RGB")
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, quality=85, optimize=True) if target.suffix.lower() in (".jpg", ".jpeg") else image.save(target)
    print(f"screenshot of the page with {label}: {target} ({target.stat().st_size / 1e3:.0f} KB)")
    return 0


def _shoot(url: str, path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 560})
            page.goto(url)
            error = page.evaluate("async () => (await fastStyle.ready).error")
            if error:
                raise ExportError(f"the page says: {error}")
            page.screenshot(path=path)
        finally:
            browser.close()


def main(options: BenchmarkConfig) -> int:
    """Export, serve, measure in Chromium both ways, print the table, write ``options.json``
    (or only the screenshot, with ``screenshot=``)."""
    import onnxruntime

    if options.screenshot:
        return screenshot(options)

    sizes = [256] if options.quick else [int(s) for s in options.sizes]
    seconds = 3.0 if options.quick else float((options.seconds or [10])[0])
    dist = _ort_dist(options)
    with tempfile.TemporaryDirectory(prefix="fast-style-web-") as tmp:
        tmp = Path(tmp)
        ckpt, label = _model(options, tmp)
        from fast_style.inference.precision import Agreement

        print(f"exporting {label} ...", file=sys.stderr, flush=True)
        exported = export_web(ckpt, tmp / "site", ort_dist=dist, judge=Agreement.of)
        for size in sizes:
            photo = synthetic_photo(size, size, seed=size)[0].permute(1, 2, 0).mul(255).round().to(torch.uint8).numpy()
            Image.fromarray(photo).save(exported.folder / f"photo-{size}.png")
        clip = camera_clip(tmp / "camera.y4m")
        modes = []
        for serving, isolated in (("python -m http.server (not isolated)", False), ("COOP/COEP (isolated)", True)):
            print(f"measuring: {serving} ...", file=sys.stderr, flush=True)
            with serve_folder(exported.folder, isolated=isolated) as url, ThreadPoolExecutor(1) as pool:
                got = pool.submit(_in_browser, url, clip, sizes, seconds).result(timeout=900)
            modes.append({"serving": serving, **got})
        python_ms = _onnxruntime_python(exported.folder, sizes)
        version = os.popen(f"{_chromium()} --version 2>/dev/null").read().split()
    result = {
        "device": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "chromium": version[1] if len(version) > 1 else "?",
        "ort_web": ORT_VERSION,
        "onnxruntime": onnxruntime.__version__,
        "model": label,
        "precision": exported.precision,
        "psnr_db": exported.psnr_db,
        "model_mb": exported.model_bytes / 1e6,
        "modes": modes,
        "onnxruntime_python_ms": python_ms,
    }
    Path(options.json).write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print(f"\n(JSON: {options.json})")
    return 0
