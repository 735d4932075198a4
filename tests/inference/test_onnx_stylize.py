"""stylize.py with exported models: ONNX through onnxruntime, TorchScript, and their errors."""

from __future__ import annotations

import sys

import pytest
import torch
from helpers import random_photo, run_entry
from PIL import Image

from fast_style.errors import CheckpointError, FastStyleError
from fast_style.inference.api import stylize, stylize_images
from fast_style.inference.options import StylizeOptions
from fast_style.inference.runners.base import HugeImageError
from fast_style.inference.runners.rules import make_runner
from fast_style.io.export import export_model
from fast_style.io.images import open_rgb_alpha, pil_to_tensor
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import detect_kind, open_model, save_style_model
from fast_style.nn.transformer import TransformerNet

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(net, style model, ONNX file) -- the legacy exporter here: fast, and it is the fallback path."""
    root = tmp_path_factory.mktemp("onnx_models")
    torch.manual_seed(3)
    net = TransformerNet(width=8, num_residual=1).eval()
    ckpt = save_style_model(net, root / "wave.safetensors", metadata=StyleModelMetadata(style_name="wave"))
    onnx = export_model(ckpt, "onnx", exporter="legacy")
    assert onnx.exporter == "legacy" and onnx.max_diff <= 1e-4
    return net, ckpt, onnx.path


def _cfg(**overrides):
    return {"progress": False, "precision": "fp32", **overrides}


def run(config):
    config = dict(config)
    return stylize(config.pop("ckpt"), config.pop("input"), **config)


def open_runner(config):
    """Open the model and build its runner, as stylize does before reading any photo."""
    config = dict(config)
    return make_runner(open_model(config.pop("ckpt")), StylizeOptions(**config))


def test_onnx_results_match_the_pytorch_checkpoint_with_options(models, tmp_path):
    net, ckpt, onnx = models
    photo = tmp_path / "p.png"
    random_photo(47, 33, seed=4).save(photo)
    options = {"preserve_color": True, "strength": 0.7, "size": 41, "precision": "fp32"}
    (ours,) = stylize_images(onnx, [photo], **options)
    (reference,) = stylize_images(ckpt, [photo], **options)
    assert ours.shape == reference.shape == (3, 29, 41)
    assert (ours - reference).abs().max().item() < 1e-4


def test_folder_run_with_batches(models, image_folder, tmp_path):
    _, _, onnx = models
    summary = run(_cfg(ckpt=str(onnx), input=str(image_folder), output=str(tmp_path / "out"), batch_size=2))
    assert len(summary.done) == 5 and not summary.failed
    assert Image.open(tmp_path / "out" / "sub" / "nested.jpg").size == (60, 44)


def test_huge_image_needs_a_checkpoint_or_no_budget(models, tmp_path):
    _, _, onnx = models
    photo = tmp_path / "big.png"
    random_photo(64, 48, seed=5).save(photo)
    with pytest.raises(HugeImageError, match=r"big\.png: 64x48 px is above pixel_budget=1000.*PyTorch checkpoint.*pixel_budget=0") as err:
        run(_cfg(ckpt=str(onnx), input=str(photo), pixel_budget=1000))
    assert "\n" not in str(err.value)
    summary = run(_cfg(ckpt=str(onnx), input=str(photo), pixel_budget=0))
    assert summary.done == [tmp_path / "big_wave.png"]


def test_options_that_do_not_apply_are_refused(models, tmp_path):
    _, _, onnx = models
    with pytest.raises(FastStyleError, match="precision=bf16"):
        open_runner(_cfg(ckpt=str(onnx), precision="bf16"))
    with pytest.raises(FastStyleError, match="compile=true"):
        open_runner(_cfg(ckpt=str(onnx), compile=True))


def test_corrupt_and_foreign_onnx_files_give_one_line(models, tmp_path):
    _, _, onnx = models
    truncated = tmp_path / "broken.onnx"
    truncated.write_bytes(onnx.read_bytes()[: onnx.stat().st_size // 2])
    assert detect_kind(truncated)[0] == "onnx"  # detected by content ...
    with pytest.raises(CheckpointError, match=r"broken\.onnx: not a readable ONNX model") as err:
        open_runner(_cfg(ckpt=str(truncated)))  # ... and refused in one line
    assert "\n" not in str(err.value)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 not a model at all")
    with pytest.raises(CheckpointError, match=r"garbage\.onnx: not a checkpoint"):
        open_runner(_cfg(ckpt=str(garbage)))

    import onnx as onnx_lib

    proto = onnx_lib.load(str(onnx))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx_lib.save(proto, str(foreign))
    with pytest.raises(CheckpointError, match="not one exported by fast-style"):
        open_runner(_cfg(ckpt=str(foreign)))


def test_missing_onnxruntime_names_the_install_and_pytorch_models_still_run(models, monkeypatch):
    net, ckpt, onnx = models
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    with pytest.raises(FastStyleError, match="needs the 'onnxruntime' package, which is not installed; pip install onnxruntime"):
        open_runner(_cfg(ckpt=str(onnx)))
    # runtime=auto: PyTorch without onnxruntime (fp32: the bf16 a CPU may pick is checked elsewhere)
    runner = open_runner({"ckpt": str(ckpt), "progress": False, "precision": "fp32"})
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(runner(x), net(x).clamp(0, 1), atol=1e-5, rtol=0)


def test_torchscript_models_run_too(models, tmp_path):
    net, ckpt, _ = models
    script = export_model(ckpt, "torchscript", tmp_path / "wave.pt")
    photo = tmp_path / "p.png"
    random_photo(39, 30, seed=6).save(photo)
    (ours,) = stylize_images(script.path, [photo], allow_torchscript=True)  # a program: an explicit opt-in
    with torch.no_grad():
        expected = net(pil_to_tensor(open_rgb_alpha(photo)[0])[None])[0].clamp(0, 1)
    assert (ours - expected).abs().max().item() < 1e-5


@pytest.mark.slow
def test_stylize_entry_point_runs_an_onnx_model(models, tmp_path):
    _, _, onnx = models
    random_photo(45, 37, seed=1).save(tmp_path / "a.png")
    ok = run_entry("stylize.py", f"ckpt={onnx}", "input=a.png", "strength=0.5", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "done 1, skipped 0, failed 0" in ok.stdout
    assert Image.open(tmp_path / "a_wave.png").size == (45, 37)
    (tmp_path / "bad.onnx").write_bytes(onnx.read_bytes()[:200])
    bad = run_entry("stylize.py", "ckpt=bad.onnx", "input=a.png", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and bad.stderr.startswith("error: bad.onnx: not a readable ONNX model")
