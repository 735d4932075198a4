"""format=executorch: a .pte for phones (XNNPACK), checked in executorch's own runtime.

The exports (about 30-40 s each on 2 cores) are shared by the module's heavy tests; the
option and file checks need no export and run in ``make test``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_photo, run_entry, save_two_styles, two_style_net
from PIL import Image

from fast_style.errors import CheckpointError
from fast_style.io.export import EXECUTORCH_TOLERANCE, ExportError, export_model
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import detect_kind, open_model, save_style_model
from fast_style.io.runtimes import (
    EXECUTORCH_METADATA_METHOD,
    RuntimeOptionError,
    quiet_native_stderr,
)
from fast_style.nn.transformer import TransformerNet

MAX_SIZE = 128
SIZES = ((1, 3, 75, 101), (1, 3, 128, 96))  # two sizes, one odd, the second at the bound


def _one_style_net() -> TransformerNet:
    torch.manual_seed(3)
    net = TransformerNet(width=8, num_residual=1).eval()
    with torch.no_grad():  # non-trivial affine norms, so a dropped norm shows
        for name, p in net.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return net


def _executorch_forward(path: Path):
    """The ``forward`` method and the metadata of a .pte, read with executorch's runtime directly."""
    with quiet_native_stderr():
        from executorch.runtime import Runtime

        program = Runtime.get().load_program(str(path))
        metadata = json.loads(program.load_method(EXECUTORCH_METADATA_METHOD).execute([])[0])
        return program.load_method("forward"), metadata


@pytest.fixture(scope="module")
def one_style(tmp_path_factory):
    """A one-style model exported through the command line (scripts/export.py)."""
    root = tmp_path_factory.mktemp("pte")
    net = _one_style_net()
    ckpt = save_style_model(net, root / "model.safetensors", metadata=StyleModelMetadata(style_name="mosaic"))
    result = run_entry("scripts/export.py", f"ckpt={ckpt}", "format=executorch", f"max_size={MAX_SIZE}",
                       cwd=root, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    return net, ckpt, root / "mosaic.pte", result.stdout


@pytest.fixture(scope="module")
def two_styles(tmp_path_factory):
    root = tmp_path_factory.mktemp("pte2")
    ckpt = save_two_styles(root / "ab.safetensors")
    return two_style_net(), export_model(ckpt, "executorch", max_size=MAX_SIZE)


@pytest.mark.slow
@pytest.mark.heavy
def test_one_style_pte_matches_pytorch_in_executorchs_runtime_at_two_sizes(one_style):
    net, ckpt, pte, stdout = one_style
    assert f"executorch model written: {pte}" in stdout and "max |exported - PyTorch|" in stdout
    assert detect_kind(pte)[0] == "executorch"
    assert not [p for p in pte.parent.iterdir() if p.name.startswith(".")]  # no temporary file left
    forward, metadata = _executorch_forward(pte)
    assert metadata["format"] == "fast-style/executorch" and metadata["style_name"] == "mosaic"
    assert metadata["max_size"] == str(MAX_SIZE) and f"(1, 3, H, W), 16 <= H, W <= {MAX_SIZE}" in metadata["input"]
    generator = torch.Generator().manual_seed(7)
    for shape in SIZES:
        x = torch.rand(shape, generator=generator)
        got = forward.execute([x])[0]
        with torch.no_grad():
            expected = net(x)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() <= EXECUTORCH_TOLERANCE


@pytest.mark.slow
@pytest.mark.heavy
def test_two_style_pte_takes_style_weights_and_matches_every_mix(two_styles):
    net, result = two_styles
    assert result.path.suffix == ".pte" and result.max_diff <= EXECUTORCH_TOLERANCE
    model = open_model(result.path)
    assert model.kind == "executorch" and model.label == "ExecuTorch" and model.num_styles == 2
    assert model.metadata.styles == ["a", "b"]
    run = model.runtime
    x = torch.rand(2, 3, 61, 90)  # a batch: the runtime feeds the program one image at a time
    outputs = []
    for weights in (torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.3, 0.7])):
        with torch.no_grad():
            expected = net(x, weights)
        got = run(x, weights)
        assert (got - expected).abs().max().item() <= EXECUTORCH_TOLERANCE
        outputs.append(got)
    assert (outputs[0] - outputs[1]).abs().max() > 0.01  # the two styles differ
    with pytest.raises(RuntimeOptionError, match="holds 2 styles"):
        run(x)


@pytest.mark.slow
@pytest.mark.heavy
def test_pte_refuses_images_outside_its_bounds_with_the_fix(one_style):
    _, _, pte, _ = one_style
    run = open_model(pte).runtime
    with pytest.raises(RuntimeOptionError, match=rf"up to {MAX_SIZE}x{MAX_SIZE}.*size={MAX_SIZE}"):
        run(torch.rand(1, 3, 64, MAX_SIZE + 1))
    with pytest.raises(RuntimeOptionError, match="at least 16 px"):
        run(torch.rand(1, 3, 8, 40))
    with pytest.raises(RuntimeOptionError, match="device=cpu"):
        open_model(pte, device="cuda")


@pytest.mark.slow
@pytest.mark.heavy
def test_stylize_runs_a_pte_like_the_pytorch_model(one_style, tmp_path):
    _, ckpt, pte, _ = one_style
    random_photo(97, 70, seed=5).save(tmp_path / "photo.png")
    outs = {}
    for name, model in (("pte", pte), ("torch", ckpt)):
        extra = [] if name == "pte" else ["runtime=torch", "precision=fp32"]
        result = run_entry("stylize.py", f"ckpt={model}", f"input={tmp_path / 'photo.png'}",
                           f"output={tmp_path / name}.png", *extra, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        outs[name] = np.asarray(Image.open(tmp_path / f"{name}.png"), dtype=np.int16)
    assert outs["pte"].shape == (70, 97, 3)
    assert np.abs(outs["pte"] - outs["torch"]).max() <= 1  # 1e-3 before rounding to 8 bits

    Image.new("RGB", (MAX_SIZE + 50, 40)).save(tmp_path / "wide.png")
    result = run_entry("stylize.py", f"ckpt={pte}", f"input={tmp_path / 'wide.png'}",
                       f"output={tmp_path / 'wide_out.png'}", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"up to {MAX_SIZE}x{MAX_SIZE}" in result.stderr and not (tmp_path / "wide_out.png").exists()


# ------------------------------------------------------------------- no export needed


@pytest.mark.parametrize("max_size", [8, 0, -5, 4097, 20000, "big", 2.5, True])
def test_max_size_out_of_range_is_one_clear_error(tmp_path, max_size):
    ckpt = save_style_model(_one_style_net(), tmp_path / "m.safetensors")
    with pytest.raises(ExportError, match="max_size="):
        export_model(ckpt, "executorch", max_size=max_size)
    assert list(tmp_path.iterdir()) == [ckpt]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_max_size_belongs_to_executorch_only(tmp_path, fmt):
    ckpt = save_style_model(_one_style_net(), tmp_path / "m.safetensors")
    with pytest.raises(ExportError, match="format=executorch only"):
        export_model(ckpt, fmt, max_size=256)


@pytest.mark.parametrize("body", [b"", b"\x00" * 64, bytes(range(256)) * 8])
def test_a_broken_pte_is_one_line_not_a_crash(tmp_path, body):
    path = tmp_path / "broken.pte"
    path.write_bytes(b"\x1c\x00\x00\x00ET12" + body)
    assert detect_kind(path)[0] == "executorch"
    with pytest.raises(CheckpointError, match="not a readable ExecuTorch program") as info:
        open_model(path)
    assert "\n" not in str(info.value)


def test_a_pte_not_written_by_fast_style_is_refused(tmp_path):
    """A program of another network (no fast-style metadata method): its pixel scale is unknown."""
    with quiet_native_stderr():
        from executorch.exir import to_edge

        program = torch.export.export(torch.nn.Conv2d(3, 3, 1).eval(), (torch.rand(1, 3, 8, 8),))
        (tmp_path / "other.pte").write_bytes(to_edge(program).to_executorch().buffer)
    with pytest.raises(CheckpointError, match="not one exported by fast-style"):
        open_model(tmp_path / "other.pte")


def test_without_executorch_installed_export_and_open_name_the_extra(tmp_path, monkeypatch):
    """executorch is an optional extra: without it both directions say how to install it."""
    import sys

    from fast_style.errors import FastStyleError

    ckpt = save_style_model(_one_style_net(), tmp_path / "m.safetensors")
    path = tmp_path / "model.pte"
    path.write_bytes(b"\x1c\x00\x00\x00ET12" + b"\x00" * 64)
    monkeypatch.setitem(sys.modules, "executorch", None)  # import executorch now raises ImportError
    for call in (lambda: export_model(ckpt, "executorch"), lambda: open_model(path)):
        with pytest.raises(FastStyleError, match=r"'executorch' package.*pip install -e \"\.\[executorch\]\""):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "model.pte"]
