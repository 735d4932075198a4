"""StyleTransferModule's checkpoint hooks: the frozen loss network stays out of the
``.ckpt`` files (``on_save_checkpoint``) and is put back from the live module on load
(``on_load_checkpoint``), so that a resumed run loads its state dict strictly."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from helpers import RANDOM_VGG as LOSS_NET
from helpers import TINY_LOSS, tiny_module
from helpers import TINY_MODEL as MODEL
from torch.utils.data import DataLoader

from fast_style.errors import FastStyleError
from fast_style.training.module import LOSS_NET_PREFIX, StyleTransferModule

STYLE_GRAMS = {"loss.style_grams.relu1_2", "loss.style_grams.relu2_2"}


def test_checkpoint_drops_the_loss_network_and_loads_strictly_into_a_fresh_module():
    first = tiny_module(seed=0)
    checkpoint = {"state_dict": first.state_dict()}
    assert any(k.startswith(LOSS_NET_PREFIX) for k in checkpoint["state_dict"])
    first.on_save_checkpoint(checkpoint)
    saved = checkpoint["state_dict"]
    assert not [k for k in saved if k.startswith(LOSS_NET_PREFIX)]
    assert STYLE_GRAMS <= set(saved)
    assert any(k.startswith("transformer.") for k in saved)

    second = tiny_module(seed=1)  # other transformer weights, other style image
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected_out = first(x)
        expected = first.loss(expected_out, x)
        before_out = second(x)
        before = second.loss(before_out, x)
    assert not torch.allclose(before_out, expected_out)
    assert not torch.allclose(before["style"], expected["style"])
    loss_net_before = {k: v.clone() for k, v in second.loss.loss_net.state_dict().items()}

    second.on_load_checkpoint(checkpoint)
    restored = checkpoint["state_dict"]
    assert {k for k in restored if k.startswith(LOSS_NET_PREFIX)} == {
        LOSS_NET_PREFIX + k for k in second.loss.loss_net.state_dict()
    }
    second.load_state_dict(restored, strict=True)

    for key, value in second.loss.loss_net.state_dict().items():  # the live loss network, unchanged
        assert torch.equal(value, loss_net_before[key]), key
    with torch.no_grad():
        out = second(x)
        got = second.loss(out, x)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=0)
    for term in ("content", "style", "tv", "total"):
        torch.testing.assert_close(got[term], expected[term], rtol=1e-6, atol=0)


def _trainer(tmp_path, max_steps: int) -> pl.Trainer:
    return pl.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path)


def test_trainer_checkpoint_has_no_loss_network_and_resumes(tmp_path):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 32, 32)  # one batch an epoch: step 1 ends an epoch
    first = tiny_module(seed=0)
    trainer = _trainer(tmp_path, max_steps=1)
    trainer.fit(first, DataLoader(images, batch_size=2))
    assert trainer.global_step == 1
    path = tmp_path / "step1.ckpt"
    trainer.save_checkpoint(path)

    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert not [k for k in saved["state_dict"] if k.startswith(LOSS_NET_PREFIX)]
    assert STYLE_GRAMS <= set(saved["state_dict"])
    assert saved["global_step"] == 1

    resumed = tiny_module(seed=1)
    trainer = _trainer(tmp_path, max_steps=2)
    trainer.fit(resumed, DataLoader(images, batch_size=2), ckpt_path=path)  # strict load
    assert trainer.global_step == 2
    # It continued from the checkpoint's Grams, not from its own (other) style image.
    for key in STYLE_GRAMS:
        torch.testing.assert_close(resumed.state_dict()[key], saved["state_dict"][key], rtol=0, atol=0)


class _RecordLR(pl.Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_cosine_schedule_falls_from_lr_to_zero_over_the_run(tmp_path):
    torch.manual_seed(0)
    module = StyleTransferModule(model=MODEL, loss=TINY_LOSS, loss_net=LOSS_NET, style={"name": "t"},
                                 style_image=torch.rand(1, 3, 32, 32), lr=2e-3, lr_schedule="cosine")
    record = _RecordLR()
    trainer = pl.Trainer(max_steps=8, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                         callbacks=[record])
    trainer.fit(module, DataLoader(torch.rand(4, 3, 32, 32), batch_size=2))
    expected = [2e-3 * (1 + math.cos(math.pi * t / 8)) / 2 for t in range(8)]
    assert record.lrs == pytest.approx(expected, rel=1e-6)


def test_constant_schedule_is_the_default_and_unknown_ones_are_refused():
    module = tiny_module(seed=0)
    assert isinstance(module.configure_optimizers(), torch.optim.Adam)
    with pytest.raises(FastStyleError, match="lr_schedule='linear'"):
        StyleTransferModule(model=MODEL, loss=TINY_LOSS, loss_net=LOSS_NET, style={"name": "t"},
                            style_image=torch.rand(1, 3, 32, 32), lr_schedule="linear")
