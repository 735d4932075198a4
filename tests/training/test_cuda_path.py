"""The training step's device and dtype discipline, checked on the CPU.

What would go wrong only on a GPU, caught here: tensors made on the CPU inside the step
(they fail on the ``meta`` device), computations that silently drop to fp32 or to
bf16 (float64 and CPU autocast show them), and host syncs (``.item()`` and friends)
inside the step."""

import contextlib

import pytest
import pytorch_lightning as pl
import torch
from helpers import tiny_module
from torch.utils._python_dispatch import TorchDispatchMode

from fast_style.nn.losses import PerceptualLoss, gram_matrix
from fast_style.nn.temporal import affine_theta, sample_motion, second_view, temporal_loss
from fast_style.training.module import StyleTransferModule


def cuda_module(*, temporal: float = 1.0, channels_last: bool | str = False) -> StyleTransferModule:
    return tiny_module(model={"width": 4}, loss={"temporal_weight": temporal}, channels_last=channels_last)


class Created(TorchDispatchMode):
    """Records (op, dtype, shape, device) of every tensor an op returns."""

    def __init__(self):
        super().__init__()
        self.tensors = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else [out]:
            if isinstance(t, torch.Tensor):
                self.tensors.append((str(func), t.dtype, tuple(t.shape), t.device.type))
        return out


@pytest.mark.parametrize("temporal", [0.0, 1.0])
def test_step_on_the_meta_device_makes_nothing_on_the_cpu(temporal):
    """A tensor created without ``device=`` (a constant, a grid, a noise draw) lands on the
    CPU and cannot meet meta tensors: the step fails instead of reaching a GPU with it."""
    module = cuda_module(temporal=temporal).to("meta")
    assert {b.device.type for b in module.buffers()} == {"meta"}
    batch = torch.rand(2, 3, 32, 32, device="meta")
    with Created() as created:
        losses = module.step_losses(batch)
    assert {v.device.type for v in losses.values()} == {"meta"}
    assert {device for *_, device in created.tensors} == {"meta"}


def test_float64_module_computes_every_image_and_loss_in_float64():
    """No buffer stays float32 after ``.to(float64)``, and no image-sized tensor or loss term
    is computed in float32 (the old ``.float()`` casts did both)."""
    module = cuda_module(temporal=1.0).to(torch.float64)
    assert {b.dtype for b in module.buffers()} == {torch.float64}
    with Created() as created:
        losses = module.step_losses(torch.rand(2, 3, 32, 32, dtype=torch.float64))
    assert {v.dtype for v in losses.values()} == {torch.float64}
    # image-like: (N, C >= 3, H, W) floats; the validity mask's sampling grid (N, H, W, 2)
    # is warp geometry, fp32 by design
    images32 = [(op, shape) for op, dtype, shape, _ in created.tensors
                if dtype.is_floating_point and dtype != torch.float64 and len(shape) == 4 and shape[1] >= 3
                and shape[-1] != 2]
    assert images32 == []


def test_grams_losses_and_warp_geometry_stay_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    features = torch.rand(2, 16, 8, 8).to(torch.bfloat16)
    exact = gram_matrix(features.float())
    module = cuda_module(temporal=1.0)
    motion = sample_motion(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features)
        losses = module.step_losses(torch.rand(2, 3, 32, 32))
        theta = affine_theta(motion, (32, 32))
        y = torch.rand(2, 3, 32, 32).to(torch.bfloat16)
        view = second_view(y)
        temporal = temporal_loss(y, y, view.theta, view.mask)
    assert gram.dtype == torch.float32 and torch.allclose(gram, exact, rtol=1e-6, atol=0)
    assert {k: v.dtype for k, v in losses.items()} == dict.fromkeys(losses, torch.float32)
    assert isinstance(module.loss, PerceptualLoss) and temporal.dtype == torch.float32
    assert view.images.dtype == torch.float32 and view.mask.dtype == torch.float32
    # the shift went through a matmul, which autocast would round to bf16 (~6e-4 off)
    assert torch.equal(theta, affine_theta(motion, (32, 32)))


HOST_SYNCS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__")


@contextlib.contextmanager
def host_syncs_raise():
    """Every Tensor method that reads a value back to the host raises inside the block."""
    saved = {name: getattr(torch.Tensor, name) for name in HOST_SYNCS}

    def refuse(name):
        def method(self, *args, **kwargs):
            raise AssertionError(f"Tensor.{name}() inside the training step: a host-device sync on a GPU")
        return method

    try:
        for name in HOST_SYNCS:
            setattr(torch.Tensor, name, refuse(name))
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


def guarded(method, counter: list):
    """``method`` run with host syncs refused; each call appended to ``counter``."""

    def call(*args, **kwargs):
        with host_syncs_raise():
            result = method(*args, **kwargs)
        counter.append(method.__name__)
        return result

    return call


def test_training_step_and_backward_read_nothing_back_to_the_host():
    """training_step (forward, losses, temporal view, self.log) and backward under the
    guard, inside a real Trainer. (Adam's own step-count ``.item()`` reads a CPU scalar,
    not the GPU, and is left out; so is Lightning's progress-bar conversion, which the
    module keeps off the bar on accelerators.)"""
    module = cuda_module(temporal=1.0)
    calls: list = []
    module.training_step = guarded(module.training_step, calls)
    module.backward = guarded(module.backward, calls)
    loader = torch.utils.data.DataLoader(torch.rand(4, 3, 32, 32), batch_size=2)
    trainer = pl.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=loader)
    assert calls == ["training_step", "backward"] * 2 and trainer.global_step == 2


def test_the_sync_guard_catches_item():
    """The guard above is able to fail."""
    with host_syncs_raise(), pytest.raises(AssertionError, match=r"Tensor.item\(\)"):
        torch.ones(1).item()
