"""scripts/benchmark.py: the dispatcher and the inference part's smoke run."""

import json

import pytest

from conftest import run_entry


def test_unknown_part_is_a_one_line_error(tmp_path):
    result = run_entry("scripts/benchmark.py", "part=nope", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown part 'nope'; choose inference, training, onnx or all"


@pytest.mark.slow
def test_inference_quick_writes_a_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    result = run_entry("scripts/benchmark.py", "part=inference", "quick=true", f"json={out}", cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| size |" in result.stdout and "speed-up" in result.stdout
    data = json.loads(out.read_text())
    assert [row["size"] for row in data["sizes"]] == [64, 128]
    assert all(row["max_diff_255"] <= 3 for row in data["sizes"])
    assert data["tiling"]["max_diff_255"] <= 2 and data["tiling"]["mean_diff_255"] <= 0.5
    assert data["big"]["tiled"] and 0 < data["big"]["peak_rss_mb"] < 4096


def test_flat_keys_reach_each_part_with_its_own_defaults():
    from fast_style.bench.options import DEFAULT_SIZES, BenchmarkConfig, BenchOptionError
    from fast_style.bench.training import size_batches

    parts = BenchmarkConfig().parts()
    assert [(c.part, c.sizes, c.json) for c in parts] == [
        (p, DEFAULT_SIZES[p], f"benchmark-{p}.json") for p in ("inference", "training", "onnx")]
    (inference,) = BenchmarkConfig(part="inference", sizes=[1024, 2048], big=False, quick=True).parts()
    assert (inference.sizes, inference.big, inference.tiling, inference.quick) == ([1024, 2048], False, True, True)
    (training,) = BenchmarkConfig(part="training", sizes=["256x4"]).parts()
    assert size_batches(training.sizes) == [(256, 4)] and training.json == "benchmark-training.json"
    with pytest.raises(BenchOptionError, match="SIZExBATCH"):
        size_batches(["256"])
    with pytest.raises(BenchOptionError, match="part=all writes"):
        BenchmarkConfig(json="x.json").parts()
