"""The start-up cache: precision=auto's decision and the in-memory ONNX export kept per network,
reused by the next run, rebuilt (never trusted) when damaged, and safe with concurrent writers."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import forked_at_once

from fast_style.cache import cache_root
from fast_style.inference.options import StylizeOptions
from fast_style.inference.runners.calibrated import CalibratedStylizer
from fast_style.inference.runners.onnxrt import OnnxStylizer, onnx_stylizer
from fast_style.inference.runners.pytorch import Stylizer
from fast_style.inference.runners.rules import make_runner
from fast_style.inference.runners.startup_cache import Decision, StartupCache, network_digest
from fast_style.io.model_files import open_model
from fast_style.nn.transformer import TransformerNet

BF16_FIRST = (torch.bfloat16, torch.float32)


def photo(height=64, width=64, seed=0):
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


def _net(seed=0, **arch):
    torch.manual_seed(seed)
    return TransformerNet(**{"width": 8, "num_residual": 1, "input_skip": True, **arch}).eval()


class CountingMake:
    """``make(dtype)`` of a CalibratedStylizer, recording which precisions were built."""

    def __init__(self, net):
        self.net, self.made = net, []

    def __call__(self, dtype):
        self.made.append(dtype)
        return Stylizer(self.net, dtype=dtype)


def _calibrated(net, cache=None):
    make = CountingMake(net)
    return CalibratedStylizer(make, list(BF16_FIRST), cache=cache), make


def _cache(net, **key):
    return StartupCache(net, torch.device("cpu"), BF16_FIRST, **key)


def test_the_digest_is_the_weights_and_architecture_not_the_object():
    assert network_digest(_net(0)) == network_digest(_net(0))
    changed = _net(0)
    with torch.no_grad():
        changed.conv1.conv.conv.weight[0, 0, 0, 0] += 1e-6
    assert network_digest(changed) != network_digest(_net(0))
    assert network_digest(_net(0, input_skip=False)) != network_digest(_net(0))


def test_a_second_run_takes_the_decision_without_judging_again(capsys):
    net = _net()
    first, made = _calibrated(net, _cache(net))
    expected = first(photo())
    assert first.chosen.dtype == torch.bfloat16 and made.made == [torch.float32, torch.bfloat16]
    entry = json.loads(next((cache_root() / "precision").glob("*.json")).read_text())
    assert entry["dtype"] == "bf16" and entry["psnr_db"] == pytest.approx(first.agreement.psnr_db)
    capsys.readouterr()
    second, made = _calibrated(net, _cache(net))  # a new process: a new runner and cache object
    assert torch.equal(second(photo()), expected)
    assert made.made == [torch.bfloat16]  # no fp32 reference pass, no calibration
    assert "cached for this model and device" in capsys.readouterr().err
    assert second.agreement.psnr_db == pytest.approx(first.agreement.psnr_db)


def test_another_network_strength_or_style_mix_is_judged_anew():
    net = _net()
    _calibrated(net, _cache(net))[0](photo())
    for cache in (_cache(_net(1)), _cache(net, strength=0.5)):
        runner, made = _calibrated(cache.network, cache)
        runner(photo())
        assert made.made[0] == torch.float32  # judged: the fp32 reference came first
    two = _net(0, num_styles=2)
    _cache(two, style=(1.0, 0.0)).remember(Decision(torch.bfloat16, 50.0, 0.001))
    assert _cache(two, style=(1.0, 0.0)).decision() == Decision(torch.bfloat16, 50.0, 0.001)
    assert _cache(two, style=(0.5, 0.5)).decision() is None
    assert StartupCache(two, torch.device("cpu"), (torch.float32,), (1.0, 0.0)).decision() is None  # other candidates


@pytest.mark.parametrize("entry", [
    "{ not json", "[]", '{"version": 1, "key": "KEY", "dtype": "int8"}',
    '{"version": 1, "key": "another", "dtype": "bf16"}', '{"version": 1, "key": "KEY", "dtype": "bf16", "psnr_db": "x"}',
])
def test_a_damaged_decision_is_judged_again_never_trusted(entry, capsys):
    net = _net()
    cache = _cache(net)
    path = cache_root() / "precision"
    cache.remember(Decision(torch.float32))
    written = next(path.glob("*.json"))
    key = json.loads(written.read_text())["key"]
    written.write_text(entry.replace("KEY", key))
    runner, made = _calibrated(net, _cache(net))
    runner(photo())
    assert made.made[0] == torch.float32 and runner.chosen.dtype == torch.bfloat16
    assert "start-up cache:" in capsys.readouterr().err
    assert json.loads(written.read_text())["dtype"] == "bf16"  # rebuilt with the new judgement


def test_the_export_is_kept_reused_and_rebuilt_when_damaged(monkeypatch, capsys):
    import fast_style.io.export as export

    net = _net(input_skip=False)  # an input skip starts as the identity: two such nets would agree
    exports = []
    real = export.onnx_bytes
    monkeypatch.setattr(export, "onnx_bytes", lambda network, **kw: exports.append(1) or real(network, **kw))
    x = photo(45, 37)
    reference = Stylizer(net)(x)
    first = onnx_stylizer(net, Stylizer(net), _cache(net))
    second = onnx_stylizer(net, Stylizer(net), _cache(net))
    assert len(exports) == 1 and torch.allclose(second(x), reference, atol=1e-4)
    stored = _cache(net).onnx_path()
    assert stored.stat().st_size > 1000 and torch.allclose(first(x), reference, atol=1e-4)
    stored.write_bytes(stored.read_bytes()[: stored.stat().st_size // 2])  # truncated
    rebuilt = onnx_stylizer(net, Stylizer(net), _cache(net))
    assert torch.allclose(rebuilt(x), reference, atol=1e-4) and len(exports) == 2
    assert "start-up cache:" in capsys.readouterr().err
    # an export of another network under this network's key fails the check and is replaced
    stored.write_bytes(real(_net(5, input_skip=False)))
    onnx_stylizer(net, Stylizer(net), _cache(net))
    assert len(exports) == 3 and "fails its check" in capsys.readouterr().err


def test_startup_cache_false_reads_and_writes_nothing(model_file):
    make_runner(open_model(model_file), StylizeOptions(runtime="onnx", startup_cache=False))
    assert not cache_root().exists() or not any(cache_root().rglob("*.onnx"))
    runner = make_runner(open_model(model_file), StylizeOptions(runtime="onnx"))
    assert isinstance(runner, OnnxStylizer) and len(list(cache_root().rglob("*.onnx"))) == 1


def test_an_unwritable_cache_folder_costs_only_the_start_up(tmp_path, monkeypatch, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("FAST_STYLE_CACHE", str(blocked))
    net = _net()
    runner, _ = _calibrated(net, _cache(net))
    assert runner(photo()).shape == (1, 3, 64, 64)
    err = capsys.readouterr().err
    assert err.count("start-up cache: cannot write") == 1 and "FAST_STYLE_CACHE" in err


def _write_and_read_in_a_job(barrier, results):
    net = _net()
    barrier.wait()
    seen = set()
    for i in range(40):
        cache = _cache(net)  # what a new run does: a new cache object, the same entry
        cache.remember(Decision(torch.bfloat16, 40.0 + i, 0.001))
        decision = cache.decision()  # the entry is always whole: the last writer's, never a torn one
        seen.add(decision is not None and decision.dtype == torch.bfloat16)
    results.put(sorted(seen))


def test_runs_filling_the_cache_at_once_always_find_a_whole_entry(capsys):
    """No torch compute in the jobs (see helpers.forked_at_once)."""
    seen = forked_at_once(_write_and_read_in_a_job, count=3, timeout=60)
    assert seen == [[True]] * 3 and "start-up cache:" not in capsys.readouterr().err
    entries = list((cache_root() / "precision").iterdir())  # one entry, no temporary left behind
    assert len(entries) == 1 and json.loads(entries[0].read_text())["dtype"] == "bf16"
