"""ONNX and TorchScript export: dynamic sizes, numerical match, metadata, never overwrite."""

from __future__ import annotations

import pytest
import torch

from fast_style.errors import CheckpointError
from fast_style.io.export import ExportError, export_model, max_difference, verify
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import detect_kind, open_model, save_style_model
from fast_style.io.pytorch_examples import to_examples
from fast_style.nn.transformer import TransformerNet

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _net() -> TransformerNet:
    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual=1).eval()
    with torch.no_grad():  # non-trivial affine norms, so a dropped or swapped norm shows
        for name, p in net.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One small model exported to both formats (ONNX export takes a few seconds)."""
    root = tmp_path_factory.mktemp("export")
    net = _net()
    ckpt = save_style_model(net, root / "model.safetensors", metadata=StyleModelMetadata(style_name="mosaic", steps=7))
    onnx = export_model(ckpt, "onnx")
    script = export_model(ckpt, "torchscript")
    return net, ckpt, onnx, script


def test_both_formats_are_written_beside_the_checkpoint_and_verified(exported):
    net, ckpt, onnx, script = exported
    assert onnx.path == ckpt.with_name("mosaic.onnx") and onnx.path.is_file()
    assert script.path == ckpt.with_name("mosaic.pt") and script.path.is_file()
    for result in (onnx, script):
        assert result.max_diff is not None and result.max_diff <= 1e-4
        assert any(s[-1] % 2 for s in result.shapes)  # one size is odd
    assert detect_kind(onnx.path)[0] == "onnx" and detect_kind(script.path)[0] == "torchscript"
    assert not list(ckpt.parent.glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_matches_pytorch_at_any_size(exported, fmt):
    net, _, onnx, script = exported
    run = open_model((onnx if fmt == "onnx" else script).path, allow_torchscript=True).runtime
    inputs = [torch.rand(2, 3, 40, 56), torch.rand(1, 3, 37, 53)]
    for x in inputs:
        assert run(x).shape == x.shape
    assert max_difference(net, run, inputs) <= 1e-4


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_network_with_input_skip_exports_with_it(tmp_path, fmt):
    net = TransformerNet(width=8, num_residual=1, input_skip=True).eval()
    with torch.no_grad():
        net.head.conv.weight.normal_(0, 0.05)
        net.input_skip.copy_(torch.tensor([0.8, 1.1, 0.5]))
    ckpt = save_style_model(net, tmp_path / "skip.safetensors", metadata=StyleModelMetadata(style_name="skip"))
    result = export_model(ckpt, fmt)
    assert result.max_diff is not None and result.max_diff <= 1e-4
    run = open_model(result.path, allow_torchscript=True).runtime
    x = torch.rand(1, 3, 37, 53)
    plain = TransformerNet(width=8, num_residual=1).eval()
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if k != "input_skip"})
    with torch.no_grad():  # the skip is in the graph: without it the output would be plain(x)
        assert (run(x) - plain(x)).abs().max() > 0.1


def test_metadata_survives_the_round_trip(exported):
    net, _, onnx, script = exported
    for result, fmt in ((onnx, "fast-style/onnx"), (script, "fast-style/torchscript")):
        assert result.metadata["format"] == fmt
        meta = open_model(result.path, allow_torchscript=True).metadata
        assert meta.style_name == "mosaic" and meta.steps == 7
        assert meta.arch == net.config and meta.extra["source_kind"] == "style-model"
        assert meta.package_version == result.metadata["package_version"]


def test_exported_files_are_not_loadable_as_pytorch_networks(exported):
    with pytest.raises(CheckpointError, match="exported ONNX model"):
        export_model(exported[2].path, "torchscript")


def test_export_never_overwrites_and_a_failed_check_writes_nothing(exported, tmp_path):
    net, _, _, _ = exported
    ckpt = tmp_path / "mosaic.pth"
    torch.save(to_examples(net), ckpt)  # a pytorch/examples checkpoint is accepted too
    target = tmp_path / "deploy.pt"
    target.write_bytes(b"keep me")
    result = export_model(ckpt, "torchscript", target)
    assert target.read_bytes() == b"keep me"
    assert result.path == tmp_path / "deploy-1.pt" and result.max_diff <= 1e-4
    assert open_model(result.path, allow_torchscript=True).metadata.extra["source_kind"] == "pytorch-examples"
    with pytest.raises(ExportError, match="nothing was written"):  # even with overwrite=true
        export_model(ckpt, "torchscript", target, overwrite=True, tolerance=-1.0)
    assert target.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploy-1.pt", "deploy.pt", "mosaic.pth"]


def test_a_mismatch_or_unknown_format_is_an_error(exported, tmp_path):
    net, ckpt, onnx, _ = exported
    other = _net()
    with torch.no_grad():
        other.head.conv.bias.add_(1e-3)
    with pytest.raises(ExportError, match="differs from PyTorch"):
        verify(onnx.path, "onnx", other)
    with pytest.raises(ExportError, match="format=gif"):
        export_model(ckpt, "gif", tmp_path / "x.gif")
    assert list(tmp_path.iterdir()) == []
