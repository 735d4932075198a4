"""Checkpoint kinds: detection from content, round trips, pytorch/examples semantics."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from fast_style.errors import CheckpointError
from fast_style.io.files import unique_path
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import detect_kind, open_model, save_style_model
from fast_style.io.pytorch_examples import examples_key_map
from fast_style.io.pytorch_examples import to_examples as examples_state_dict
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
    path = save_style_model(net, tmp_path / "s.safetensors", metadata=StyleModelMetadata(style_name="waves"))
    opened = open_model(path)
    assert opened.kind == "style-model" and opened.style_name == "waves"
    assert _same(opened.network, net, photo) == 0.0


def test_lightning_checkpoint_round_trip_any_extension(tmp_path, net, photo):
    ckpt = {
        "state_dict": {f"transformer.{k}": v for k, v in net.state_dict().items()} | {"loss_net.w": torch.zeros(2)},
        "hyper_parameters": {"model": dict(net.config), "style": {"name": "scream"}},
        "global_step": 7,
    }
    path = tmp_path / "weights.bin"  # content decides, not the extension
    torch.save(ckpt, path)
    opened = open_model(path)
    assert opened.kind == "lightning" and opened.style_name == "scream" and opened.metadata.steps == 7
    assert _same(opened.network, net, photo) == 0.0


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
    opened = open_model(path)
    model = opened.network
    assert opened.kind == "pytorch-examples" and opened.style_name == "mosaic"
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
        open_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert "pwned" not in capsys.readouterr().out


def test_torch_file_of_something_else(tmp_path):
    path = tmp_path / "t.pt"
    torch.save({"weights": [1, 2, 3]}, path)
    with pytest.raises(CheckpointError, match="neither a Lightning checkpoint nor"):
        detect_kind(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        open_model(tmp_path / "nope.safetensors")


# --------------------------------------------------------------- style models, metadata


def test_style_model_round_trip_keeps_metadata(tmp_path):
    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual=2).eval()
    meta = StyleModelMetadata(style_name="x", loss={"a": 1}, steps=7, loss_net="random(seed=0)")
    path = save_style_model(net, tmp_path / "m.safetensors", metadata=meta)
    opened = open_model(path)
    x = torch.rand(1, 3, 33, 35)
    with torch.no_grad():
        torch.testing.assert_close(opened.network(x), net(x), rtol=0, atol=0)
    got = opened.metadata
    assert (got.style_name, got.steps, got.loss, got.loss_net) == ("x", 7, {"a": 1}, "random(seed=0)")
    assert got.arch == net.config and got.package_version and got.created
    with safe_open(str(path), framework="pt") as handle:  # the stored strings other tools read
        strings = handle.metadata()
    assert strings["format"] == "fast-style/style-model" and strings["steps"] == "7"
    assert json.loads(strings["arch"]) == net.config and json.loads(strings["loss"]) == {"a": 1}
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_parameter_names_are_those_of_every_model_written_so_far():
    """The file format's contract: renaming a module would orphan every saved style model."""
    keys = set(TransformerNet(width=4, num_residual=1).state_dict())
    assert {"conv1.conv.conv.weight", "conv1.norm.weight", "down1.conv.conv.bias", "down2.norm.bias",
            "residuals.0.conv1.conv.weight", "residuals.0.norm2.bias", "up1.conv.conv.weight", "up2.norm.weight",
            "head.conv.weight", "head.conv.bias"} <= keys
    original = set(TransformerNet(width=4, num_residual=1, norm="batch", upsample="transposed").state_dict())
    assert {"up1.conv.weight", "up2.conv.bias", "conv1.norm.running_mean"} <= original


@pytest.mark.parametrize("variant", [{}, {"norm": "batch", "upsample": "transposed"}, {"num_residual": 3},
                                     {"input_skip": True}])
def test_architecture_comes_from_the_tensors(tmp_path, variant):
    net = TransformerNet(**{"width": 8, "num_residual": 1, **variant}).eval()
    torch.save(net.state_dict(), tmp_path / "bare.pt")
    opened = open_model(tmp_path / "bare.pt")
    assert opened.kind == "state-dict" and opened.network.config == net.config == opened.metadata.arch


def test_metadata_arch_that_disagrees_with_the_tensors_is_refused(tmp_path):
    net = TransformerNet(width=8, num_residual=1)
    path = save_style_model(net, tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        strings = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    strings["arch"] = json.dumps({"width": 4096, "num_residual": 200000, "norm": "instance", "upsample": "nearest"})
    save_file(tensors, str(tmp_path / "edited.safetensors"), metadata=strings)
    with pytest.raises(CheckpointError, match="its metadata says arch"):
        open_model(tmp_path / "edited.safetensors")


def test_foreign_or_corrupt_files_are_rejected(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(CheckpointError, match="not a fast-style model"):
        open_model(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        open_model(junk)


def test_pickled_code_in_a_ckpt_is_not_executed(tmp_path, capsys):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        open_model(path)
    assert "pwned" not in capsys.readouterr().out


def test_lightning_checkpoint_metadata_agrees_with_the_exported_style_model(tmp_path):
    """Training's export callback and reading a .ckpt build the metadata the same way."""
    net = TransformerNet(width=4, num_residual=1)
    hparams = {"model": net.config, "style": {"name": "wave", "sha256": "abc"}, "loss": {"content_weight": 1.0},
               "loss_net": {"arch": "vgg16", "pool": "max"}, "loss_net_source": "imagenet"}
    torch.save({"state_dict": {f"transformer.{k}": v for k, v in net.state_dict().items()}
                | {"loss.style_grams.relu1_2": torch.zeros(1)}, "hyper_parameters": hparams, "global_step": 12},
               tmp_path / "last.ckpt")
    from_ckpt = open_model(tmp_path / "last.ckpt").metadata
    live = StyleModelMetadata.from_training(hparams, steps=12)
    for field in ("style_name", "style_sha256", "arch", "loss", "loss_net", "loss_net_config", "steps"):
        assert getattr(from_ckpt, field) == getattr(live, field), field
    assert (from_ckpt.style_name, from_ckpt.steps, from_ckpt.loss_net) == ("wave", 12, "imagenet")
    saved = save_style_model(net, tmp_path / "wave.safetensors", metadata=from_ckpt)
    again = open_model(saved).metadata
    assert (again.loss, again.loss_net_config, again.steps) == (from_ckpt.loss, from_ckpt.loss_net_config, 12)


def test_unique_path_never_reuses_a_name(tmp_path):
    first = tmp_path / "s.safetensors"
    assert unique_path(first) == first
    first.write_bytes(b"")
    assert unique_path(first).name == "s-1.safetensors"
