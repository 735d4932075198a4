"""Checkpoint kinds: detection from content, round trips, pytorch/examples semantics."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F

from fast_style.io.model_files import CheckpointError, save_style_model
from fast_style.io.formats import (
    detect_format,
    examples_key_map,
    examples_state_dict,
    load_transformer,
)
from fast_style.nn.transformer import TransformerNet


@pytest.fixture
def net() -> TransformerNet:
    torch.manual_seed(0)
    model = TransformerNet(width=8, num_residual=2).eval()
    with torch.no_grad():  # non-trivial affine norms so the mapping of every tensor matters
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return model


@pytest.fixture
def photo() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(1, 3, 48, 64)


def _same(a: TransformerNet, b: TransformerNet, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


def test_style_model_round_trip(tmp_path, net, photo):
    path = save_style_model(net, tmp_path / "s.safetensors", metadata={"style_name": "waves"})
    model, info = load_transformer(path)
    assert info["kind"] == "style-model" and info["style_name"] == "waves"
    assert _same(model, net, photo) == 0.0


def test_lightning_checkpoint_round_trip_any_extension(tmp_path, net, photo):
    ckpt = {
        "state_dict": {f"transformer.{k}": v for k, v in net.state_dict().items()} | {"loss_net.w": torch.zeros(2)},
        "hyper_parameters": {"model": dict(net.config), "style": {"name": "scream"}},
        "global_step": 7,
    }
    path = tmp_path / "weights.bin"  # content decides, not the extension
    torch.save(ckpt, path)
    model, info = load_transformer(path)
    assert info["kind"] == "lightning" and info["style_name"] == "scream"
    assert _same(model, net, photo) == 0.0


def _with_stale_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What old PyTorch saved for InstanceNorm2d: running statistics nobody uses."""
    stale = dict(state)
    for key in list(state):
        if key.endswith(".weight") and ("in" in key.split(".")[-2]):
            base = key[: -len("weight")]
            stale[base + "running_mean"] = torch.randn_like(state[key])
            stale[base + "running_var"] = torch.rand_like(state[key])
    return stale


def examples_forward(state: dict[str, torch.Tensor], x255: torch.Tensor) -> torch.Tensor:
    """pytorch/examples fast_neural_style semantics, written from its description:
    0-255 input, reflection-padded convs, instance norm, nearest x2 upsampling by
    scale factor, output clamped to 0-255 as its stylize does before saving."""

    def conv(name, x, stride=1, up=False):
        if up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        w = state[f"{name}.conv2d.weight"]
        x = F.pad(x, [w.shape[-1] // 2] * 4, mode="reflect")
        return F.conv2d(x, w, state[f"{name}.conv2d.bias"], stride=stride)

    def inorm(name, x):
        return F.instance_norm(x, weight=state[f"{name}.weight"], bias=state[f"{name}.bias"], eps=1e-5)

    y = F.relu(inorm("in1", conv("conv1", x255)))
    y = F.relu(inorm("in2", conv("conv2", y, stride=2)))
    y = F.relu(inorm("in3", conv("conv3", y, stride=2)))
    i = 1
    while f"res{i}.conv1.conv2d.weight" in state:
        r = F.relu(inorm(f"res{i}.in1", conv(f"res{i}.conv1", y)))
        y = y + inorm(f"res{i}.in2", conv(f"res{i}.conv2", r))
        i += 1
    y = F.relu(inorm("in4", conv("deconv1", y, up=True)))
    y = F.relu(inorm("in5", conv("deconv2", y, up=True)))
    return conv("deconv3", y).clamp(0, 255)


def test_examples_key_names():
    mapping = examples_key_map(
        {"conv1.conv2d.weight": 0, "in1.weight": 0, "res3.conv2.conv2d.bias": 0, "res1.in2.weight": 0,
         "deconv1.conv2d.weight": 0, "in5.bias": 0, "deconv3.conv2d.weight": 0, "in2.running_mean": 0}
    )
    assert mapping == {
        "conv1.conv2d.weight": "conv1.conv.conv.weight",
        "in1.weight": "conv1.norm.weight",
        "res3.conv2.conv2d.bias": "residuals.2.conv2.conv.bias",
        "res1.in2.weight": "residuals.0.norm2.weight",
        "deconv1.conv2d.weight": "up1.conv.conv.weight",
        "in5.bias": "up2.norm.bias",
        "deconv3.conv2d.weight": "head.conv.weight",
    }


@pytest.mark.parametrize("suffix", [".pth", ".model"])
def test_examples_checkpoint_matches_their_forward(tmp_path, net, photo, suffix):
    state = _with_stale_keys(examples_state_dict(net))
    assert "in1.running_mean" in state and "res1.in1.running_var" in state
    path = tmp_path / f"mosaic{suffix}"
    torch.save(state, path)
    model, info = load_transformer(path)
    assert info["kind"] == "pytorch-examples" and info["style_name"] == "mosaic"
    assert _same(model, net, photo) < 1e-5
    with torch.no_grad():
        ours = model(photo).clamp(0, 1) * 255
        theirs = examples_forward(state, photo * 255)
    assert (ours - theirs).abs().max().item() <= 1.0  # within 1/255 of their stylize


def test_examples_scale_folding_is_needed(net, photo):
    """Loading their tensors without the x255 / /255 folding gives a visibly different image."""
    state = examples_state_dict(net)
    raw = TransformerNet(width=8, num_residual=2).eval()
    mapping = examples_key_map(state)
    raw.load_state_dict({mapping[k]: v for k, v in state.items()})
    with torch.no_grad():
        assert (raw(photo).clamp(0, 1) - net(photo).clamp(0, 1)).abs().max() > 0.1


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"hello, not a model\n", "not a checkpoint"),
        (b"", "not a checkpoint"),
        (pickle.dumps({"x": _Evil()}, protocol=2), "not a readable torch checkpoint"),
    ],
)
def test_bad_checkpoints_one_line_error(tmp_path, content, message, capsys):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_transformer(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert "pwned" not in capsys.readouterr().out


def test_torch_file_of_something_else(tmp_path):
    path = tmp_path / "t.pt"
    torch.save({"weights": [1, 2, 3]}, path)
    with pytest.raises(CheckpointError, match="neither a Lightning checkpoint nor"):
        detect_format(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_transformer(tmp_path / "nope.safetensors")
