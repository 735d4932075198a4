"""The fast training path: every switch composes and runs, the losses stay fp32 under autocast, the
auto trainer resolves per device (the reference-step equality: tests/benchmarks/test_training_speed.py)."""

import pytest
import pytorch_lightning as pl
import torch
from helpers import TINY_OVERRIDES, compose_train, is_channels_last
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fast_style.devices import native_bf16, training_path
from fast_style.nn.losses import PerceptualLoss, gram_matrix
from fast_style.training.spec import build_train_spec
from fast_style.training.train import build_module, load_style_tensor

pytestmark = pytest.mark.usefixtures("reuse_random_vgg")


def test_gram_and_losses_stay_fp32_under_autocast():
    features = torch.randn(2, 4, 5, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features)
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, gram_matrix(features), rtol=0, atol=0)


def test_content_targets_stop_at_the_deepest_content_layer(reuse_random_vgg):
    """The no-grad content pass runs relu1_1 .. relu2_2 only, not the whole relu4_3 stack."""
    vgg = reuse_random_vgg(layers=["relu2_2", "relu1_2", "relu2_2", "relu3_3", "relu4_3"], arch="vgg16",
                           pretrained=False, weights=None, seed=0, pool="max")
    loss = PerceptualLoss(loss_net=vgg, style_image=torch.rand(1, 3, 32, 32), content_layers={"relu2_2": 1.0},
                          style_layers={"relu1_2": 1.0, "relu4_3": 1.0}, content_weight=1.0, style_weight=1.0,
                          tv_weight=1.0)
    calls = []
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: calls.append(n)) for n, m in zip(vgg.names, vgg.features, strict=True)]
    y, x = torch.rand(2, 3, 32, 32, requires_grad=True), torch.rand(2, 3, 32, 32)
    loss(y, x)
    for hook in hooks:
        hook.remove()
    assert calls.count("conv1_1") == 2 and calls.count("relu2_2") == 2
    assert calls.count("conv3_1") == 1 and calls.count("relu4_3") == 1
    full = vgg(x)
    torch.testing.assert_close(vgg.taps(x, ["relu2_2"])["relu2_2"], full["relu2_2"])


def test_gpu_trainer_sets_the_fast_path():
    cfg = compose_train(["trainer=gpu"])
    assert (cfg.trainer.accelerator, cfg.trainer.precision, cfg.channels_last) == ("gpu", "bf16-mixed", True)
    gpu, default = (OmegaConf.to_container(c.trainer) for c in (cfg, compose_train([])))
    assert {k for k in default if gpu[k] != default[k]} == {"accelerator", "precision"}  # the rest inherited
    assert set(gpu) == set(default)
    cfg = compose_train(["trainer=gpu", "channels_last=false", "trainer.precision=32-true"])
    assert (cfg.trainer.precision, cfg.channels_last) == ("32-true", False)
    assert compose_train([]).compile is False


class _Record(pl.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].detach())


SWITCHES = {
    "trainer=cpu": lambda m, t: t.precision == "bf16-mixed" and is_channels_last(m.loss.loss_net.features[0].weight)
    and not is_channels_last(m.transformer.head.conv.weight),
    "channels_last=true": lambda m, t: is_channels_last(m.transformer.head.conv.weight) and is_channels_last(m.loss.loss_net.features[0].weight),
    # the rest of the trainer is the auto path of this CPU (bf16-mixed where bf16 is native)
    "loss.batched=true": lambda m, t: m.loss.batched and t.precision == training_path(torch.device("cpu")).precision,
}


@pytest.mark.parametrize("switch", list(SWITCHES))
def test_switch_composes_and_runs_one_step(switch, tmp_path, image_folder, style_file):
    """trainer=cpu is the CPU fast path: precision=bf16-mixed plus channels_last=loss_net."""
    if switch == "trainer=cpu":
        if not native_bf16(torch.device("cpu")):
            pytest.skip("this CPU has no native bf16 (AVX512-BF16/AMX): emulated bf16 is only slow, not tested")
    cfg = compose_train(TINY_OVERRIDES + [switch, f"data.root={image_folder}", f"paths.output_dir={tmp_path}"])
    spec = build_train_spec(cfg)  # the trainer's precision is the spec's (cfg keeps "auto")
    module = build_module(spec, load_style_tensor(style_file, size=cfg.style.size))
    record = _Record()
    trainer = instantiate(spec.trainer, max_steps=1, logger=False, callbacks=[record], enable_checkpointing=False)
    trainer.fit(module, datamodule=instantiate(cfg.data))
    assert trainer.global_step == 1 and len(record.losses) == 1
    assert torch.isfinite(record.losses[0]) and record.losses[0].dtype == torch.float32
    assert SWITCHES[switch](module, trainer)


def test_compile_switch_composes(style_file, tmp_path):
    """compile=true wraps both networks in place (checkpoint keys unchanged).

    Running a compiled step is not tested: Inductor's first step (forward and
    backward graphs of TransformerNet and VGG-16) takes minutes on 2 CPU cores;
    ``scripts/benchmark.py part=training compile=true`` measures it.
    """
    cfg = compose_train(TINY_OVERRIDES + ["compile=true", f"paths.output_dir={tmp_path}"])
    module = build_module(build_train_spec(cfg), load_style_tensor(style_file, size=cfg.style.size))
    assert module.transformer._compiled_call_impl is not None
    assert module.loss._compiled_call_impl is not None
    assert not any("_orig_mod" in key for key in module.state_dict())


def test_auto_trainer_is_the_default_and_resolves_per_device(monkeypatch):
    from fast_style import devices
    from fast_style.training.spec import choose_device_path

    cfg = compose_train([])
    assert (cfg.trainer.precision, cfg.channels_last, cfg.trainer.accelerator) == ("auto", "auto", "auto")
    cases = {  # (cuda bf16, cpu native bf16) -> device -> (precision, channels_last)
        ("cuda", True, False): ("bf16-mixed", True),
        ("cuda", False, False): ("16-mixed", True),
        ("cpu", False, True): ("bf16-mixed", "loss_net"),
        ("cpu", False, False): ("32-true", "loss_net"),
        ("mps", False, False): ("32-true", False),
    }
    for (kind, cuda_bf16, cpu_bf16), expected in cases.items():
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, v=cuda_bf16, **k: v)
        monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda v=cpu_bf16: v)
        path = devices.training_path(torch.device(kind))
        assert (path.precision, path.channels_last) == expected, kind
        cfg = compose_train([f"trainer.accelerator={'gpu' if kind == 'cuda' else kind}"])
        chosen = choose_device_path(cfg)
        assert (chosen.precision, chosen.channels_last) == expected
        assert (cfg.trainer.precision, cfg.channels_last) == ("auto", "auto")  # the config is not changed
    # a value set by hand is kept, the other half still resolved
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    chosen = choose_device_path(compose_train(["trainer.accelerator=cpu", "trainer.precision=32-true"]))
    assert (chosen.precision, chosen.channels_last) == ("32-true", "loss_net")
    chosen = choose_device_path(compose_train(["trainer=cpu"]))  # explicit groups do not go through auto
    assert (chosen.precision, chosen.channels_last, chosen.reason) == ("bf16-mixed", "loss_net", None)
