import json

import pytest
import torch
from safetensors.torch import save_file

from fast_style.io.model_files import (
    CheckpointError,
    load_style_model,
    read_lightning_checkpoint,
    save_style_model,
    transformer_from_lightning,
    unique_path,
)
from fast_style.nn.transformer import TransformerNet


def test_style_model_round_trip_gives_the_same_output(tmp_path):
    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual=2).eval()
    path = save_style_model(net, tmp_path / "m.safetensors", metadata={"style_name": "x", "loss": {"a": 1}, "steps": "7"})
    loaded, meta = load_style_model(path)
    x = torch.rand(1, 3, 33, 35)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)
    assert meta["style_name"] == "x" and meta["steps"] == "7" and json.loads(meta["loss"]) == {"a": 1}
    assert json.loads(meta["arch"]) == net.config and meta["format"] == "fast-style/style-model"
    assert "package_version" in meta and "created" in meta
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_foreign_or_corrupt_files_are_rejected(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(CheckpointError, match="not a fast-style model"):
        load_style_model(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_style_model(junk)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_lightning_checkpoint(junk)


def test_pickled_code_is_not_executed(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_lightning_checkpoint(path)


def test_transformer_from_lightning_dict():
    net = TransformerNet(width=4, num_residual=1)
    checkpoint = {
        "state_dict": {f"transformer.{k}": v for k, v in net.state_dict().items()} | {"loss.style_grams.relu1_2": torch.zeros(1)},
        "hyper_parameters": {"model": net.config, "style": {"name": "wave", "sha256": "abc"}, "loss_net_source": "imagenet"},
        "global_step": 12,
    }
    model, meta = transformer_from_lightning(checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net.state_dict().values(), strict=True))
    assert meta["style_name"] == "wave" and meta["steps"] == "12" and meta["loss_net"] == "imagenet"


def test_unique_path_never_reuses_a_name(tmp_path):
    first = tmp_path / "s.safetensors"
    assert unique_path(first) == first
    first.write_bytes(b"")
    assert unique_path(first).name == "s-1.safetensors"
