"""format=web: the exported folder, the fp16 choice, bad input; and the page itself in a real
headless Chromium (onnxruntime-web from the npm package, copied in with ort_dist: no network).

onnxruntime-web is looked up in $FAST_STYLE_ORT_WEB, else build/web-deps/node_modules/onnxruntime-web
(where .ci/run installs it with npm); without it the browser tests skip with one line, and
FAST_STYLE_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import REPO, random_photo, run_entry, skip_or_fail
from PIL import Image

from fast_style.inference.colour import blend, preserve_color
from fast_style.inference.precision import Agreement
from fast_style.io.export import ExportError
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import open_model, save_style_model
from fast_style.io.web_export import (
    ORT_FILES,
    check_target,
    export_web,
    find_ort_dist,
    fp16_weights,
)
from fast_style.io.web_serve import serve_folder
from fast_style.nn.transformer import ConditionalInstanceNorm2d, TransformerNet

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ORT_WEB = Path(os.environ.get("FAST_STYLE_ORT_WEB") or REPO / "build" / "web-deps" / "node_modules" / "onnxruntime-web")
STYLES = ("a", "b", "c")


def _ort_dist() -> Path:
    """onnxruntime-web's dist/ (see the module docstring), or a skip / a failure under CI."""
    try:
        return find_ort_dist(ORT_WEB)
    except ExportError:
        message = (f"web export tests need onnxruntime-web at {ORT_WEB} (npm install --prefix build/web-deps "
                   "onnxruntime-web@1.31.1, or set FAST_STYLE_ORT_WEB)")
        skip_or_fail(message, required_by="FAST_STYLE_REQUIRE_BROWSER")


def _net(num_styles: int = 1) -> TransformerNet:
    torch.manual_seed(num_styles)
    net = TransformerNet(width=8, num_residual=1, num_styles=num_styles).eval()
    with torch.no_grad():  # visible norms, different per style
        for module in net.modules():
            if isinstance(module, ConditionalInstanceNorm2d | torch.nn.InstanceNorm2d):
                if getattr(module, "weight", None) is not None:
                    module.weight.normal_(1.0, 0.5)
                    module.bias.normal_(0.0, 0.5)
    return net


def _refuse(fp16, fp32):
    """A judge that finds every fp16 output out of bound (the fp32 path of the choice)."""
    return SimpleNamespace(psnr_db=30.0, mean_diff=0.01, within_bound=False)


@pytest.fixture(scope="module")
def one_style(tmp_path_factory):
    """A one-style tiny model exported as the command does (default exporter, the real judge)."""
    dist = _ort_dist()
    root = tmp_path_factory.mktemp("web1")
    ckpt = save_style_model(_net(), root / "mosaic.safetensors", metadata=StyleModelMetadata(style_name="mosaic"))
    return export_web(ckpt, ort_dist=dist, judge=Agreement.of), ckpt


@pytest.fixture(scope="module")
def three_styles(tmp_path_factory):
    """A three-style model whose fp16 weights the judge refuses (so fp32 is written)."""
    dist = _ort_dist()
    root = tmp_path_factory.mktemp("web3")
    ckpt = save_style_model(_net(3), root / "abc.safetensors",
                            metadata=StyleModelMetadata(style_name="a+b+c", styles=list(STYLES)))
    return export_web(ckpt, root / "site", ort_dist=dist, judge=_refuse, exporter="legacy"), ckpt


# ------------------------------------------------------------------ the folder (no browser)


@pytest.mark.slow
def test_the_folder_holds_page_model_metadata_and_a_local_onnxruntime(one_style):
    result, ckpt = one_style
    folder = result.folder
    assert folder == ckpt.with_name("mosaic-web")
    assert {p.name for p in folder.iterdir()} == {"index.html", "app.js", "model.onnx", "model.json", "README.md", "ort"}
    assert {p.name for p in (folder / "ort").iterdir()} == set(ORT_FILES)
    meta = json.loads((folder / "model.json").read_text())
    assert meta["format"] == "fast-style/web" and meta["styles"] == ["mosaic"] and meta["multi_style"] is False
    assert meta["precision"] == "fp16" and meta["psnr_db"] >= 40 and meta["ort_url"] == "ort/ort.min.mjs"
    readme = (folder / "README.md").read_text()
    assert "python -m http.server" in readme and "fp16 weights" in readme and f"{meta['psnr_db']:.1f} dB" in readme
    # the written model runs in onnxruntime and is the network, up to fp16 weight rounding
    run = open_model(folder / "model.onnx").runtime
    x = torch.rand(1, 3, 45, 67)
    with torch.no_grad():
        expected = _net()(x)
    assert (run(x) - expected).abs().max().item() < 0.05
    assert not [p for p in ckpt.parent.iterdir() if p.name.startswith(".")]  # no build folder left


@pytest.mark.slow
def test_fp32_is_written_when_fp16_misses_the_bound_and_the_readme_says_why(three_styles):
    result, _ = three_styles
    meta = json.loads((result.folder / "model.json").read_text())
    assert result.precision == meta["precision"] == "fp32" and meta["psnr_db"] == 30.0
    assert meta["multi_style"] is True and meta["styles"] == list(STYLES)
    assert "below the project's bound" in (result.folder / "README.md").read_text()
    assert "style=a:0.7,b:0.3" in (result.folder / "README.md").read_text()


def test_fp16_weights_halve_the_file_and_keep_float32_inputs_and_outputs(tmp_path):
    import onnx
    import onnxruntime as ort

    from fast_style.io.export import onnx_bytes

    net = _net()
    proto = onnx.load_from_string(onnx_bytes(net))
    half = fp16_weights(proto)
    assert len(half.SerializeToString()) < 0.6 * len(proto.SerializeToString())
    assert [i.type.tensor_type.elem_type for i in half.graph.input] == [onnx.TensorProto.FLOAT]
    x = np.random.default_rng(0).random((1, 3, 33, 21), dtype=np.float32)
    outs = [ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
            for p in (proto, half)]
    assert outs[1].dtype == np.float32 and outs[1].shape == x.shape
    assert 0 < np.abs(outs[0] - outs[1]).max() < 0.05  # rounded weights: close, not identical


def test_bad_output_folders_and_ort_dist_are_one_line_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        check_target(tmp_path / "file", overwrite=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "holiday.jpg").write_text("x")
    with pytest.raises(ExportError, match="holds other files"):
        check_target(tmp_path / "mine", overwrite=True)  # never deleted, even with overwrite
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "model.json").write_text('{"format": "fast-style/web"}')
    with pytest.raises(ExportError, match="overwrite=true"):
        check_target(tmp_path / "old", overwrite=False)
    check_target(tmp_path / "old", overwrite=True)
    check_target(tmp_path / "new", overwrite=False)
    with pytest.raises(ExportError, match="no onnxruntime-web files"):
        find_ort_dist(tmp_path)


def test_a_file_without_a_network_is_refused_before_anything_is_written(tmp_path, one_style_onnx):
    with pytest.raises(Exception, match="PyTorch network"):
        export_web(one_style_onnx, tmp_path / "site")
    assert not (tmp_path / "site").exists()


@pytest.fixture
def one_style_onnx(tmp_path):
    from fast_style.io.export import export_model

    ckpt = save_style_model(_net(), tmp_path / "m.safetensors", metadata=StyleModelMetadata(style_name="m"))
    return export_model(ckpt, "onnx", exporter="legacy").path


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (12-40 s)
@pytest.mark.slow
def test_the_command_refuses_bad_input_in_one_line(tmp_path):
    ckpt = save_style_model(_net(), tmp_path / "m.safetensors", metadata=StyleModelMetadata(style_name="m"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    for args, expected in [
        ([f"ckpt={tmp_path / 'busy' / 'notes.txt'}", "format=web"], "not a checkpoint"),
        ([f"ckpt={ckpt}", "format=webb"], "format=webb"),
        ([f"ckpt={ckpt}", "format=onnx", "ort_dist=/nowhere"], "format=web only"),
        ([f"ckpt={ckpt}", "format=web", f"output={tmp_path / 'busy'}"], "holds other files"),
    ]:
        proc = run_entry("scripts/export.py", *args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], proc.stderr
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------ the page in Chromium


def _decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"))


def _python_output(folder: Path, photo: Image.Image, weights=None, *, strength=1.0, preserve=False) -> np.ndarray:
    """onnxruntime (Python) on the folder's model.onnx, finished as stylize.py finishes (uint8 HWC)."""
    x = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()
    run = open_model(folder / "model.onnx").runtime
    s = run(x) if weights is None else run(x, torch.tensor(weights, dtype=torch.float32))
    if preserve:
        s = preserve_color(s, x)
    y = blend(s, x, strength=strength).clamp(0, 1)
    return y[0].permute(1, 2, 0).mul(255).round().to(torch.uint8).numpy()


def _page_state(page, url: str, timeout: float = 60_000) -> dict:
    page.goto(url)
    return page.evaluate("async () => { const s = await window.fastStyle.ready; "
                         "return {error: s.error, result: s.result, backend: s.backend}; }")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("query,strength,preserve", [("", 1.0, False), ("&strength=0.6&preserve_color=1", 0.6, True)])
def test_the_page_output_equals_onnxruntime_in_python_one_style(one_style, chromium_page, query, strength, preserve):
    folder = one_style[0].folder
    photo = random_photo(67, 45, seed=3)
    photo.save(folder / "photo.png")
    with serve_folder(folder) as url:
        state = _page_state(chromium_page, f"{url}index.html?image=photo.png{query}")
    assert state["error"] is None and state["backend"] in ("wasm", "webgpu")
    page = _decode(state["result"])
    expected = _python_output(folder, photo, strength=strength, preserve=preserve)
    assert page.shape == expected.shape == (45, 67, 3)
    assert np.abs(page.astype(int) - expected.astype(int)).max() <= 2
    assert np.abs(expected.astype(int) - np.asarray(photo, dtype=int)).mean() > 10  # it did stylize


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_output_equals_onnxruntime_in_python_three_styles_mixed(three_styles, chromium_page, tmp_path):
    folder = three_styles[0].folder
    photo = random_photo(53, 71, seed=5)
    photo.save(folder / "photo.png")
    with serve_folder(folder, isolated=True) as url:
        state = _page_state(chromium_page, f"{url}index.html?image=photo.png&style=a:0.5,c:0.3,b:0.2")
        one = _python_output(folder, photo, [0.5, 0.2, 0.3])
        assert state["error"] is None
        page = _decode(state["result"])
        assert page.shape == one.shape == (71, 53, 3)
        assert np.abs(page.astype(int) - one.astype(int)).max() <= 2
        other = _python_output(folder, photo, [0.0, 1.0, 0.0])
        assert np.abs(other.astype(int) - one.astype(int)).max() > 10  # the weights matter
        # a multi-style model without weights, and an unknown style: a message, not a blank page
        for query, expected in [("", "say which: &style=a:1"), ("&style=z:1", "no style z")]:
            state = _page_state(chromium_page, f"{url}index.html?image=photo.png{query}")
            assert state["result"] is None and expected in state["error"]
            assert expected in chromium_page.inner_text("#error")
    chromium_page.screenshot(path=tmp_path / "no-weights.png")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("damage", ["truncated", "not a style model", "no model.json"])
def test_a_broken_model_gives_a_readable_message(one_style, chromium_page, tmp_path, damage):
    import onnx
    from onnx import TensorProto, helper

    folder = tmp_path / "site"
    shutil.copytree(one_style[0].folder, folder)
    random_photo(40, 30, seed=1).save(folder / "photo.png")
    if damage == "truncated":
        data = (folder / "model.onnx").read_bytes()
        (folder / "model.onnx").write_bytes(data[: len(data) // 3])
        expected = "model.onnx could not be loaded"
    elif damage == "not a style model":
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9),
                  str(folder / "model.onnx"))
        expected = "not a fast-style model"
    else:
        (folder / "model.json").unlink()
        expected = "not a fast-style web export"
    with serve_folder(folder) as url:
        start = time.monotonic()
        state = _page_state(chromium_page, f"{url}index.html?image=photo.png")
        assert time.monotonic() - start < 30
        assert state["result"] is None and expected in state["error"]
        assert expected in chromium_page.inner_text("#error") and chromium_page.is_visible("#error")
        chromium_page.screenshot(path=tmp_path / "broken.png")
    assert (tmp_path / "broken.png").stat().st_size > 1000


def write_y4m(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    """(T, H, W, 3) uint8 RGB frames as a YUV4MPEG2 clip (4:2:0, full-range BT.601: what
    Chromium's fake camera reads); H and W even."""
    t, h, w, _ = frames.shape
    rgb = frames.astype(np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    u = -0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2] + 128
    v = 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2] + 128
    sub = lambda c: c.reshape(t, h // 2, 2, w // 2, 2).mean(axis=(2, 4))  # noqa: E731
    to8 = lambda c: np.clip(np.rint(c), 0, 255).astype(np.uint8)  # noqa: E731
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for k in range(t):
            f.write(b"FRAME\n")
            for plane in (to8(y[k]), to8(sub(u)[k]), to8(sub(v)[k])):
                f.write(plane.tobytes())
    return path


def moving_clip(width: int = 64, height: int = 48, count: int = 20) -> np.ndarray:
    """A bright square moving across a gradient, (count, H, W, 3) uint8."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 90)], -1).astype(np.uint8)
    frames = np.repeat(base[None], count, axis=0)
    for k in range(count):
        left = (k * 3) % (width - 12)
        frames[k, 10:22, left:left + 12] = (250, 250, 40)
    return frames


def _watch_camera(url: str, clip: Path, shot: Path) -> tuple[dict, str, list[np.ndarray]]:
    """Open the page in webcam mode in a Chromium whose camera plays ``clip``; the page's state,
    its frames/s line and six output frames a quarter second apart. Run in its own thread:
    Playwright's sync API allows one instance per thread, and the session's ``chromium`` may
    hold this one."""
    from browser import CHROMIUM_ARGS, chromium_executable
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=[
            *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}",
            "--use-fake-ui-for-media-stream"])
        try:
            page = browser.new_page()
            page.goto(f"{url}index.html?camera=1")
            page.wait_for_function("window.fastStyle.frames >= 3 || window.fastStyle.error", timeout=60_000)
            seen = []
            for _ in range(6):  # one capture per newly rendered frame, however slow the machine is
                rendered = page.evaluate("window.fastStyle.frames")
                seen.append(_decode(page.evaluate("document.getElementById('output').toDataURL('image/png')")))
                page.wait_for_function(f"window.fastStyle.frames > {rendered} || window.fastStyle.error",
                                       timeout=60_000)
            state = page.evaluate("({error: fastStyle.error, frames: fastStyle.frames, fps: fastStyle.fps})")
            fps_text = page.inner_text("#fps")
            page.screenshot(path=shot)
        finally:
            browser.close()
    return state, fps_text, seen


@pytest.mark.slow
@pytest.mark.browser
def test_webcam_mode_renders_frames_that_follow_the_fake_camera(one_style, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from browser import why_no_browser

    reason = why_no_browser()
    if reason:
        skip_or_fail(f"browser tests need a headless Chromium: {reason}", required_by="FAST_STYLE_REQUIRE_BROWSER")
    clip = write_y4m(tmp_path / "clip.y4m", moving_clip())
    with serve_folder(one_style[0].folder) as url, ThreadPoolExecutor(1) as pool:
        state, fps_text, seen = pool.submit(_watch_camera, url, clip, tmp_path / "webcam.png").result(timeout=120)
    assert state["error"] is None and state["frames"] >= 6 and state["fps"] > 0
    assert "frames/s at 64x48" in fps_text
    assert all(frame.shape == (48, 64, 3) for frame in seen)
    distinct = {frame.tobytes() for frame in seen}
    assert len(distinct) >= 3  # the output moves with the clip
    assert (tmp_path / "webcam.png").stat().st_size > 1000
