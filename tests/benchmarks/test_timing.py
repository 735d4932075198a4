"""benchmarks.timing: the one timing helper every benchmark part and gpu-check time with."""

import time

import pytest
import torch

from benchmarks import timing


def test_time_once_syncs_around_the_call_and_returns_its_result(monkeypatch):
    events = []
    monkeypatch.setattr(timing, "synchronize", lambda device: events.append(("sync", device.type)))

    def call():
        events.append(("call", None))
        time.sleep(0.02)
        return 42

    seconds, result = timing.time_once(call, device=torch.device("cuda"))
    assert result == 42 and 0.02 <= seconds < 1
    assert events == [("sync", "cuda"), ("call", None), ("sync", "cuda")]
    assert timing.time_once(lambda: "x")[1] == "x"  # the CPU by default


def test_time_calls_warms_up_untimed_then_times_the_steps(monkeypatch):
    calls = []
    result = timing.time_calls(lambda: calls.append(time.sleep(0.01)), device=torch.device("cpu"), warmup=2, steps=3)
    assert len(calls) == 5 and result.steps == 3 and result.peak_mb is None
    assert 0.03 <= result.seconds < 1 and result.per_call_s == pytest.approx(result.seconds / 3)
    with pytest.raises(ValueError, match="steps=0"):
        timing.time_calls(lambda: None, device=torch.device("cpu"), warmup=0, steps=0)
