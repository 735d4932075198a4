"""make gpu-check (scripts/benchmark.py part=gpu, or scripts/gpu_check.py): the one line without CUDA, and its measurement code run on the CPU."""

import json
import re

import pytest
from helpers import run_entry


@pytest.mark.slow
def test_without_cuda_it_says_so_in_one_line_and_exits_0(tmp_path):
    result = run_entry("scripts/gpu_check.py", cwd=tmp_path, timeout=120, env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"gpu-check: no CUDA device here \(torch \d+\.\d+, CUDA build [\w.]+\); nothing measured", lines[0])
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (20-45 s)
@pytest.mark.slow
def test_cpu_smoke_run_measures_every_table(tmp_path):
    """device=cpu quick=true runs the same code as on a GPU (training on synthetic and loader
    batches, the loader alone, the stylize runner on device and host paths, tiled), tiny."""
    result = run_entry("scripts/benchmark.py", "part=gpu", "device=cpu", "quick=true", "train_variants=[fp32]",
                       "stylize_variants=[fp32,fp32+tiled,fp16,bf16+cudagraphs]", "json=out.json", "markdown=out.md",
                       cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "out.json").read_text())
    assert {"device", "torch", "train", "loaders", "stylize", "skipped", "table"} <= set(report)
    assert report["device"] == "cpu" and report["model"]["width"] == 8
    assert [(r["variant"], r["data"]) for r in report["train"]] == [
        ("fp32", "synthetic"), ("fp32", "folder"), ("fp32", "shards")]
    for r in report["train"]:
        assert r["steps_per_s"] > 0 and r["images_per_s"] == pytest.approx(2 * r["steps_per_s"])
        assert r["steps"] == 2 and 0 <= r["loader_wait"] < 1
    assert all(r["vs_synthetic"] > 0 for r in report["train"][1:])
    assert [r["data"] for r in report["loaders"]] == ["folder", "shards"]
    for r in report["loaders"]:
        assert r["images_per_s"] > 0 and r["images_per_s_per_worker"] == pytest.approx(r["images_per_s"])  # 0 workers
    assert report["finished"] is True
    assert [(r["variant"], r["path"], r["size"]) for r in report["stylize"]] == [
        ("fp32", "device", "64x48"), ("fp32", "host", "64x48"), ("fp32+tiled", "host", "64x48")]
    for r in report["stylize"]:
        assert r["images_per_s"] > 0 and r["mp_per_s"] == pytest.approx(r["images_per_s"] * 64 * 48 / 1e6)
    assert report["skipped"] == ["fp16: fp16 needs a CUDA device", "bf16+cudagraphs: CUDA graphs need a CUDA device"]
    table = (tmp_path / "out.md").read_text()
    assert "| variant | data | steps/s |" in table and "| fp32 | 64x48 | 1 | host |" in table
    assert "| shards | 0 |" in table and "Unfinished" not in table
    assert table.strip() in result.stdout


def test_variant_names_are_checked():
    from benchmarks.options import BenchOptionError
    from benchmarks.variants import parse_variant

    variant = parse_variant("BF16+compile")
    assert (variant.precision, variant.compile, variant.cudagraphs) == ("bf16", True, False)
    assert parse_variant("fp16").unsupported_on("cpu") == "fp16 needs a CUDA device"
    assert parse_variant("fp16+cudagraphs").unsupported_on("cuda") is None
    with pytest.raises(BenchOptionError, match="starts with one of fp32, bf16, fp16"):
        parse_variant("int8")
    with pytest.raises(BenchOptionError, match="unknown flag 'tiled'"):
        parse_variant("fp32+tiled", allowed=("compile", "cudnn"))


def test_quick_plan_keeps_4k_out_and_shrinks_off_cuda():
    import torch

    from benchmarks.gpu import make_plan
    from benchmarks.options import BenchmarkConfig

    full = make_plan(BenchmarkConfig(part="gpu"), torch.device("cpu"))
    assert full.stylize_sizes == [(1024, 1024), (3840, 2160)] and full.model["width"] == 32
    assert (full.train_size, full.train_batch) == (256, 4)
    quick = make_plan(BenchmarkConfig(part="gpu", quick=True), torch.device("cpu"))
    assert quick.stylize_sizes == [(64, 48)] and (quick.train_size, quick.train_batch) == (32, 2)
    assert [v.name for v in quick.train_variants] == ["fp32", "bf16", "bf16+cudnn", "bf16+compile"]
