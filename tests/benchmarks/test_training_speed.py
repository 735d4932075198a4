"""The fast training step of benchmarks/training.py: the same losses as the reference step, and the
part's quick run (the product's switches: tests/test_training_path.py)."""

import json

import pytest
import torch

from benchmarks import training as bench

TINY = {"width": 8, "num_residual": 1, "norm": "instance", "upsample": "nearest"}


pytestmark = pytest.mark.usefixtures("reuse_random_vgg")


def _steps(precision, *, channels_last, batched=False, size=32, batch=2, steps=2):
    """Final loss terms of the reference and the fast step after ``steps`` identical steps."""
    settings = {"precision": precision, "channels_last": channels_last, "batched": batched, "compile": False,
                "lr": 1e-3}
    loss_net = {"arch": "vgg16", "pretrained": False, "seed": 0}
    reference, fast = bench.build_pair(size=size, model=TINY, loss_net=loss_net, settings=settings,
                                       device=torch.device("cpu"), seed=0)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.rand(batch, 3, size, size, generator=gen)
        ref, out = reference(x), fast(x)
    return ref, out


def test_fp32_fast_step_equals_reference_step():
    """channels_last + truncated content pass change nothing but summation order."""
    ref, fast = _steps("32-true", channels_last=True)
    for key in ref:
        torch.testing.assert_close(fast[key], ref[key], rtol=bench.TOLERANCE["32-true"], atol=1e-6)


def test_batched_fast_step_equals_reference_step():
    ref, fast = _steps("32-true", channels_last="loss_net", batched=True)
    for key in ref:
        torch.testing.assert_close(fast[key], ref[key], rtol=bench.TOLERANCE["32-true"], atol=1e-6)


def test_bf16_fast_step_agrees_with_reference_within_bf16_tolerance():
    ref, fast = _steps("bf16-mixed", channels_last="loss_net")
    assert all(v.dtype == torch.float32 for v in fast.values()), "losses must stay fp32 under autocast"
    for key in ref:
        torch.testing.assert_close(fast[key], ref[key], rtol=bench.TOLERANCE["bf16-mixed"], atol=1e-5)
    # bf16 really ran: far more apart than fp32 summation order (~1e-7) could make them
    assert abs(fast["total"] - ref["total"]) / ref["total"] > 1e-5



def test_benchmark_quick_writes_json(tmp_path, capsys):
    from benchmarks.options import BenchmarkConfig

    path = tmp_path / "bench.json"
    assert bench.main(BenchmarkConfig(part="training", quick=True, json=str(path)).for_part("training")) == 0
    report = json.loads(path.read_text())
    (result,) = report["results"]
    assert result["losses_agree"] and result["fast_steps_per_s"] > 0 and result["reference_steps_per_s"] > 0
    assert set(result["losses"]["fast"]) == {"content", "style", "tv", "colour", "total"}
    assert "| 32 px | 2 |" in capsys.readouterr().out
