"""Careless and hostile input to stylizing: nothing lost, nothing run, nothing unbounded.

Each case asserts the exact outcome: the exit status, the one ``error:`` line (or the
per-file report of a folder run), the files on disk and, where a file could make us
allocate gigabytes, the peak memory of the process.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO, compose, random_photo, run_entry
from PIL import Image
from safetensors.torch import save_file

import fast_style
from fast_style.errors import FastStyleError
from fast_style.io.files import safe_name, sweep_stale
from fast_style.io.metadata import ONNX_FORMAT, STYLE_MODEL_FORMAT, StyleModelMetadata
from fast_style.io.model_files import open_model, save_style_model
from fast_style.nn.transformer import TransformerNet


def one_error_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The single ``error:`` line of a failed run (asserting there is nothing else on stderr)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def files_in(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def peak_rss_mb(args: list[str], cwd: Path, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``python args`` and return (result, the child's peak resident memory in MB)."""
    probe = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, *sys.argv[1:]], capture_output=True, text=True)\n"
        "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr)\n"
        "print(f'PEAK_KB {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}')\n"
        "sys.exit(r.returncode)\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, "-c", probe, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=env)
    peak = int(result.stdout.strip().splitlines()[-1].split()[1]) / 1024
    result.stdout = "\n".join(result.stdout.strip().splitlines()[:-1])
    return result, peak


@pytest.fixture(scope="module")
def baseline_mb(tmp_path_factory, model_file) -> float:
    """Peak memory of stylizing a small photo: what importing torch and the model costs."""
    folder = tmp_path_factory.mktemp("baseline")
    random_photo(64, 48, seed=1).save(folder / "a.png")
    result, peak = peak_rss_mb([str(REPO / "stylize.py"), f"ckpt={model_file}", "input=a.png"], folder)
    assert result.returncode == 0, result.stderr
    return peak


EXTRA_MB = 300  # a refused file may cost this much above the baseline; decoding it would cost GBs


# ------------------------------------------------------------------ data lost or overwritten


def test_no_input_is_written_over_by_another_inputs_output(tmp_path, model_file):
    folder = tmp_path / "f"
    folder.mkdir()
    random_photo(40, 30, seed=1).save(folder / "a.png")
    random_photo(40, 30, seed=2).save(folder / "a.jpg")
    before = files_in(folder)
    for fmt in ("jpg", "png"):
        summary = fast_style.stylize(model_file, folder, output=str(folder), format=fmt, overwrite=True, progress=False)
        assert summary.counts() == (0, 2, 0)
        assert all("is an input of this run" in why for _, why in summary.skipped)
    assert files_in(folder) == before


def test_two_inputs_with_one_output_name_are_reported_not_replaced(tmp_path, model_file):
    folder = tmp_path / "f"
    folder.mkdir()
    random_photo(40, 30, seed=1).save(folder / "a.jpg")
    random_photo(50, 20, seed=2).save(folder / "a.png")
    for overwrite in (False, True):
        summary = fast_style.stylize(model_file, folder, output=str(tmp_path / "out"), format="png",
                                     overwrite=overwrite, progress=False)
        assert summary.counts() == (1, 0, 1)  # a.jpg written (again, when overwriting), a.png refused
        (failed_source, why), = summary.failed
        assert failed_source == folder / "a.png" and "also the output of" in why and str(folder / "a.jpg") in why
    assert Image.open(tmp_path / "out" / "a.png").size == (40, 30)  # a.jpg's result, never replaced by a.png's
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]


def test_an_output_folder_inside_the_input_is_not_stylized_again(tmp_path, model_file):
    folder = tmp_path / "f"
    folder.mkdir()
    random_photo(40, 30, seed=1).save(folder / "a.png")
    first = fast_style.stylize(model_file, folder, output=str(folder / "out"), progress=False)
    second = fast_style.stylize(model_file, folder, output=str(folder / "out"), progress=False)
    assert first.counts() == (1, 0, 0) and second.counts() == (0, 1, 0)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == ["a.png", "out/a.png"]


def test_a_style_name_from_a_file_never_becomes_a_path(tmp_path):
    evil = tmp_path / "evil.safetensors"
    save_style_model(TransformerNet(width=8, num_residual=1), evil,
                     metadata=StyleModelMetadata(style_name="x/../../../ESCAPED"))
    photos = tmp_path / "deep" / "er" / "photos"
    photos.mkdir(parents=True)
    random_photo(40, 30, seed=1).save(photos / "a.png")
    summary = fast_style.stylize(evil, photos / "a.png")
    (written,) = summary.done
    assert written.parent == photos and written.name == "a_x_.._.._.._ESCAPED.png"
    assert list(tmp_path.rglob("*ESCAPED*")) == [written]
    assert safe_name("../..") == "styled" and safe_name("-rf /") == "rf_" and safe_name("名前") == "名前"


# ------------------------------------------------------------------ unbounded memory, time or disk


@pytest.mark.slow
def test_a_huge_size_is_refused_before_any_allocation(tmp_path, model_file, baseline_mb):
    random_photo(128, 128, seed=1).save(tmp_path / "a.png")
    result, peak = peak_rss_mb([str(REPO / "stylize.py"), f"ckpt={model_file}", "input=a.png", "size=100000"], tmp_path)
    one_error_line(result, "a.png", "100000x100000", "max_pixels=")
    assert peak < baseline_mb + EXTRA_MB, f"{peak:.0f} MB, baseline {baseline_mb:.0f} MB"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.slow
def test_a_small_file_of_huge_pixels_is_refused_from_its_header(tmp_path, model_file, baseline_mb):
    Image.new("RGB", (12000, 12000), (200, 120, 40)).save(tmp_path / "big.png")
    assert (tmp_path / "big.png").stat().st_size < 2_000_000
    start = time.perf_counter()
    result, peak = peak_rss_mb([str(REPO / "stylize.py"), f"ckpt={model_file}", "input=big.png"], tmp_path)
    one_error_line(result, "big.png", "12000x12000", "max_pixels=67108864")
    assert peak < baseline_mb + EXTRA_MB, f"{peak:.0f} MB, baseline {baseline_mb:.0f} MB"
    assert time.perf_counter() - start < 60


def test_max_pixels_is_a_documented_limit_that_can_be_raised(tmp_path, model_file):
    random_photo(300, 200, seed=1).save(tmp_path / "a.png")
    with pytest.raises(FastStyleError, match=r"a.png: is 300x200 px .* above max_pixels=50000"):
        fast_style.stylize(model_file, tmp_path / "a.png", max_pixels=50_000)
    with pytest.raises(FastStyleError, match=r"a.png: would be stylized at 600x400 px .* above max_pixels=100000"):
        fast_style.stylize(model_file, tmp_path / "a.png", max_pixels=100_000, scale=2.0)
    ok = fast_style.stylize(model_file, tmp_path / "a.png", max_pixels=100_000, size=150)
    assert ok.counts() == (1, 0, 0) and Image.open(ok.done[0]).size == (150, 100)


def _huge_network_files(folder: Path) -> dict[str, Path]:
    """Small files whose tensors or metadata describe networks of tens of GB."""
    small = TransformerNet(width=8, num_residual=1).state_dict()
    meta = StyleModelMetadata(style_name="x").to_strings(format=STYLE_MODEL_FORMAT)
    files = {}
    many = {k: v for k, v in small.items() if not k.startswith("residuals.")}
    for i in range(200):  # the names of 200 residual blocks, with tiny tensors
        many[f"residuals.{i}.conv1.conv.conv.weight"] = torch.zeros(1)
    files["blocks"] = folder / "blocks.safetensors"
    save_file(many, str(files["blocks"]), metadata=meta)
    wide = dict(small)
    wide["conv1.conv.conv.weight"] = torch.zeros(8192, 3, 1, 1)  # claims width 8192: billions of parameters
    files["wide"] = folder / "wide.safetensors"
    save_file(wide, str(files["wide"]), metadata=meta)
    lying = {**meta, "arch": json.dumps({"width": 100000, "num_residual": 200000, "norm": "instance", "upsample": "nearest"})}
    files["metadata"] = folder / "lying.safetensors"
    save_file({k: v.contiguous() for k, v in small.items()}, str(files["metadata"]), metadata=lying)
    broken = {**meta, "arch": "{not json"}
    files["broken-arch"] = folder / "broken.safetensors"
    save_file({k: v.contiguous() for k, v in small.items()}, str(files["broken-arch"]), metadata=broken)
    return files


@pytest.mark.parametrize("case, needle", [
    ("blocks", "200 residual blocks, above the limit of 64"),
    ("wide", "parameters, above the limit of 100 M"),
    ("metadata", "its metadata says arch"),
])
def test_the_network_size_follows_checked_tensors_not_text(tmp_path, case, needle):
    path = _huge_network_files(tmp_path)[case]
    with pytest.raises(FastStyleError) as info:
        open_model(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and needle in message, message


def test_unreadable_arch_text_is_ignored_for_the_tensors(tmp_path):
    model = open_model(_huge_network_files(tmp_path)["broken-arch"])
    assert model.network.config["width"] == 8 and model.metadata.arch == model.network.config


@pytest.mark.slow
def test_huge_network_file_is_refused_in_bounded_memory(tmp_path, baseline_mb):
    path = _huge_network_files(tmp_path)["wide"]
    random_photo(40, 30, seed=1).save(tmp_path / "a.png")
    result, peak = peak_rss_mb([str(REPO / "stylize.py"), f"ckpt={path}", "input=a.png"], tmp_path)
    one_error_line(result, "wide.safetensors", "above the limit of 100 M")
    assert peak < baseline_mb + EXTRA_MB, f"{peak:.0f} MB, baseline {baseline_mb:.0f} MB"


@pytest.mark.parametrize("tile_size", [0, 3, 27])  # the tiny model's receptive field: 17 + 8 = 25 -> 28 px
def test_a_tile_smaller_than_the_receptive_field_is_refused(tmp_path, model_file, tile_size):
    random_photo(128, 128, seed=1).save(tmp_path / "a.png")
    with pytest.raises(FastStyleError, match=f"tile_size={tile_size}") as info:
        fast_style.stylize(model_file, tmp_path / "a.png", tile_size=tile_size, pixel_budget=100)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def _wait_for(predicate, timeout: float = 60) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("signum, status, line", [
    (signal.SIGTERM, 143, None),
    (signal.SIGINT, 130, "error: interrupted (Ctrl-C)"),
    (signal.SIGKILL, -9, None),
])
def test_a_signal_during_a_tiled_run_leaves_no_cache_and_no_output(tmp_path, model_file, signum, status, line):
    temp = tmp_path / "tmp"
    temp.mkdir()
    random_photo(800, 800, seed=3).save(tmp_path / "big.png")
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, str(REPO / "stylize.py"), f"ckpt={model_file}", "input=big.png", "tile_size=64",
            "pixel_budget=4096", "progress=false"]
    process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        caches = lambda: [p for p in temp.iterdir() if p.name.startswith("fast-style-tiles")]  # noqa: E731
        assert _wait_for(lambda: caches() and any(caches()[0].iterdir())), "no tile cache appeared"
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == status, stderr
    if line:
        assert stderr.strip().splitlines()[-1].startswith(line), stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png", "tmp"]  # no output, no temporary image
    if signum == signal.SIGKILL:
        assert len(caches()) == 1  # left behind by the killed process ...
        random_photo(200, 200, seed=4).save(tmp_path / "small.png")
        rerun = subprocess.run([*args[:3], "input=small.png", *args[4:]], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
    assert caches() == []  # ... and swept by the next tiled run


@pytest.mark.slow
def test_sweep_removes_only_dead_processes_files(tmp_path):
    host = os.uname().nodename
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".a.fast-style-tmp-{host}-{dead.pid}-abc123.png"
    live = tmp_path / f".b.fast-style-tmp-{host}-{os.getpid()}-abc123.png"
    other_host = tmp_path / f".c.fast-style-tmp-{host}x-{dead.pid}-abc123.png"
    user_file = tmp_path / ".d.png"
    for path in (stale, live, other_host, user_file):
        path.write_bytes(b"x")
    assert sweep_stale(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, other_host, user_file))


@pytest.mark.slow
def test_torchscript_is_code_and_refused_unless_allowed(tmp_path, model_file):
    from fast_style.io.export import export_model

    script = export_model(model_file, "torchscript", tmp_path / "wave.pt").path
    random_photo(40, 30, seed=1).save(tmp_path / "a.png")
    refused = run_entry("stylize.py", f"ckpt={script}", "input=a.png", cwd=tmp_path)
    one_error_line(refused, "wave.pt", "program", "allow_torchscript=true")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "wave.pt"]
    with pytest.raises(FastStyleError, match="allow_torchscript=true"):
        fast_style.stylize_images(script, [tmp_path / "a.png"])
    (image,) = fast_style.stylize_images(script, [tmp_path / "a.png"], allow_torchscript=True)  # the opt-in
    assert tuple(image.shape) == (3, 30, 40)


class _RunsCode:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["MARKER"]),))


def test_a_pickle_that_carries_code_is_refused_and_never_run(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("MARKER", str(marker))
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as handle:
        pickle.dump({"state_dict": _RunsCode()}, handle, protocol=2)
    torch.save({"weights": _RunsCode()}, tmp_path / "evil_zip.pth")
    for path in (evil, tmp_path / "evil_zip.pth"):
        with pytest.raises(FastStyleError, match="not a readable torch checkpoint"):
            open_model(path)
    assert not marker.exists()


# ------------------------------------------------------------------ wrong results, exit 0


def _onnx_model(path: Path, kind: str) -> Path:
    """A fast-style-labelled ONNX model that returns a 1x1 image ("pixel") or a scalar ("scalar")."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])
    if kind == "pixel":
        starts = helper.make_tensor("starts", TensorProto.INT64, [2], [0, 0])
        ends = helper.make_tensor("ends", TensorProto.INT64, [2], [1, 1])
        axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
        node = helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["output"])
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, 1, 1])
        graph = helper.make_graph([node], "pixel", [x], [y], initializer=[starts, ends, axes])
    else:
        node = helper.make_node("ReduceMean", ["input"], ["output"], keepdims=0)
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [])
        graph = helper.make_graph([node], "scalar", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    helper.set_model_props(proto, StyleModelMetadata(style_name=kind).to_strings(format=ONNX_FORMAT))
    onnx.save(proto, str(path))
    return path


@pytest.mark.parametrize("kind", ["pixel", "scalar"])
def test_an_onnx_model_that_returns_no_image_fails_the_file(tmp_path, kind):
    pytest.importorskip("onnxruntime")
    model = _onnx_model(tmp_path / f"{kind}.onnx", kind)
    photos = tmp_path / "photos"
    photos.mkdir()
    random_photo(40, 30, seed=1).save(photos / "a.png")
    random_photo(36, 30, seed=2).save(photos / "b.png")
    summary = fast_style.stylize(model, photos, output=str(tmp_path / "out"), progress=False)
    assert summary.counts() == (0, 0, 2)
    assert all("the model returned shape" in why for _, why in summary.failed)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    with pytest.raises(FastStyleError, match=r"photos/a.png: the model returned shape"):
        fast_style.stylize(model, photos / "a.png", output=str(tmp_path / "one.png"))


def test_nan_weights_are_refused_when_the_model_is_opened(tmp_path):
    net = TransformerNet(width=8, num_residual=1)
    with torch.no_grad():
        net.conv1.conv.conv.weight.view(-1)[0] = float("nan")
    save_style_model(net, tmp_path / "nan.safetensors")
    with pytest.raises(FastStyleError, match="hold NaN or infinite values") as info:
        open_model(tmp_path / "nan.safetensors")
    assert "\n" not in str(info.value)


def test_a_non_finite_output_fails_the_file(tmp_path, model_file):
    random_photo(40, 30, seed=1).save(tmp_path / "a.png")
    model = open_model(model_file)
    with torch.no_grad():
        model.network.head.conv.bias.fill_(float("nan"))  # weights are checked at open: break them after
    with pytest.raises(FastStyleError, match="NaN or infinite values"):
        fast_style.stylize(model, tmp_path / "a.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


# ------------------------------------------------------------------ one line, not a traceback


@pytest.mark.slow
@pytest.mark.parametrize("override, needle", [
    ("size=abc", "size=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    ("strenght=0.5", "strenght: no such option; did you mean strength?"),
])
def test_bad_command_lines_are_one_line(tmp_path, model_file, override, needle):
    random_photo(40, 30, seed=1).save(tmp_path / "a.png")
    result = run_entry("stylize.py", f"ckpt={model_file}", "input=a.png", override, cwd=tmp_path)
    one_error_line(result, needle, "--cfg job lists every option")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.parametrize("config, override, needle", [
    ("stylize", "strength=abc", "strength=abc: Value 'abc' of type 'str' could not be converted to Float"),
    ("stylize", "batch_size=abc", "batch_size=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    ("stylize", "size=[1", "no viable alternative at input '[1'"),
    ("stylize", "overwrite=maybe", "overwrite=maybe"),
    ("train", "style=nonexist", "Could not find 'style/nonexist'; choose one of: composition_vii, custom, demo"),
    ("train", "data.batch_sizee=3", "Key 'batch_sizee' not in 'DataOptions'"),  # the data group has a schema
])
def test_composition_errors_become_one_line(config, override, needle):
    from fast_style.cli import config_error_line
    from fast_style.config import SCHEMAS

    with pytest.raises(Exception) as info:
        compose(config, ["ckpt=m", "input=x", override] if config == "stylize" else [override])
    line = config_error_line(info.value, schema=SCHEMAS[f"{config}_schema"])
    assert "\n" not in line and needle in line, line


@pytest.mark.parametrize("option, value", [
    ("tile_blend", -5), ("channels_last", "banana"), ("devices", 0), ("max_pixels", 0), ("pixel_budget", -1),
    ("batch_size", 0), ("quality", 101), ("strength", 1.5), ("size", 0), ("png_compression", 10),
    ("png_compression", -1),
])
def test_out_of_range_options_are_one_line(tmp_path, model_file, option, value):
    random_photo(40, 30, seed=1).save(tmp_path / "a.png")
    with pytest.raises(FastStyleError, match=f"^{option}={value}: ") as info:
        fast_style.stylize(model_file, tmp_path / "a.png", **{option: value})
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_an_output_folder_that_cannot_be_created_is_one_line(tmp_path, model_file, image_folder):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    with pytest.raises(FastStyleError, match="cannot create this folder") as info:
        fast_style.stylize(model_file, image_folder, output=str(tmp_path / "file.txt" / "out"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (3, 3000), (2000, 5)])
def test_tiny_images_are_stylized_at_their_size(tmp_path, model_file, size):
    random_photo(*size, seed=1).save(tmp_path / "a.png")
    summary = fast_style.stylize(model_file, tmp_path / "a.png")
    assert summary.counts() == (1, 0, 0) and Image.open(summary.done[0]).size == size


def test_size_one_is_a_one_pixel_image(tmp_path, model_file):
    random_photo(128, 96, seed=1).save(tmp_path / "a.png")
    summary = fast_style.stylize(model_file, tmp_path / "a.png", size=1)
    assert Image.open(summary.done[0]).size == (1, 1)


def test_gifs_are_picked_up_and_other_animations_say_first_frame(tmp_path, model_file, caplog):
    folder = tmp_path / "f"
    folder.mkdir()
    frames = [random_photo(40, 30, seed=i) for i in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(folder / "anim.png", save_all=True, append_images=frames[1:], duration=100)  # APNG
    summary = fast_style.stylize(model_file, folder, output=str(tmp_path / "out"), format="webp", progress=False)
    assert summary.counts() == (2, 0, 0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["anim.gif", "anim.webp"]
    with Image.open(tmp_path / "out" / "anim.gif") as gif:
        assert gif.n_frames == 3  # a GIF is stylized as an animation (tests/test_video.py)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{folder / 'anim.png'}: an animation of 3 frames; only its first frame is stylized"]
