"""scripts/benchmark.py: the dispatcher and the inference part's smoke run."""

import json

import pytest
from helpers import run_entry, save_two_styles


@pytest.mark.slow
def test_unknown_part_is_a_one_line_error(tmp_path):
    from benchmarks.options import PARTS

    result = run_entry("scripts/benchmark.py", "part=nope", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert PARTS[:5] == ("inference", "training", "onnx", "video", "data")
    assert result.stderr.strip() == f"error: unknown part 'nope'; choose {', '.join(PARTS)} or all"


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (20-45 s)
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
    from benchmarks.options import DEFAULT_SIZES, BenchmarkConfig, BenchOptionError
    from benchmarks.training import size_batches

    parts = BenchmarkConfig().parts()
    assert [(c.part, c.sizes, c.json) for c in parts] == [
        (p, DEFAULT_SIZES[p], f"benchmark-{p}.json") for p in ("inference", "training", "onnx", "data")]
    (inference,) = BenchmarkConfig(part="inference", sizes=[1024, 2048], big=False, quick=True).parts()
    assert (inference.sizes, inference.big, inference.tiling, inference.quick) == ([1024, 2048], False, True, True)
    (training,) = BenchmarkConfig(part="training", sizes=["256x4"]).parts()
    assert size_batches(training.sizes) == [(256, 4)] and training.json == "benchmark-training.json"
    with pytest.raises(BenchOptionError, match="SIZExBATCH"):
        size_batches(["256"])
    with pytest.raises(BenchOptionError, match="part=all writes"):
        BenchmarkConfig(json="x.json").parts()


def test_data_quick_compares_folder_and_shards(tmp_path, capsys):
    from benchmarks import run
    from benchmarks.options import BenchmarkConfig

    out = tmp_path / "data.json"
    assert run(BenchmarkConfig(part="data", quick=True, json=str(out))) == 0
    assert "| size | source | images/s per worker | vs folder |" in capsys.readouterr().out
    (result,) = json.loads(out.read_text())["results"]
    sources = result["sources"]
    assert list(sources) == ["folder", "jpeg", "raw"] and result["images"] == 16
    assert all(s["images_per_s"] > 0 for s in sources.values()) and sources["folder"]["speedup"] == 1.0
    # raw shards store every pixel; JPEG shards far fewer bytes
    assert sources["raw"]["bytes_per_image"] > sources["jpeg"]["bytes_per_image"]
    assert sources["raw"]["speedup"] > 1.0


def test_the_sample_photos_are_the_folder_given_else_scikit_image_s(tmp_path):
    from PIL import Image

    from benchmarks.data import make_photos, source_photos

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "red.png")
    (tmp_path / "notes.txt").write_text("not a photo")
    (photo,) = source_photos(tmp_path)
    assert photo.size == (40, 30) and photo.getpixel((0, 0)) == (200, 10, 10)
    assert [p.size for p in source_photos(None)] == [p.size for p in source_photos(tmp_path / "missing")]
    assert len(source_photos(None)) == 4
    out = tmp_path / "out"
    out.mkdir()
    paths = make_photos(out, 2, seed=0, sample_photos=tmp_path)
    colours = [Image.open(p).convert("RGB").getpixel((320, 240)) for p in paths]
    assert all(r > 150 and g < 60 and b < 60 for r, g, b in colours)  # cut from the red photo (JPEG-rounded)


def test_the_stylize_part_needs_the_checkout_of_stylize_py(tmp_path):
    from benchmarks import stylize
    from benchmarks.options import BenchmarkConfig, BenchOptionError

    for project in (None, str(tmp_path)):
        (config,) = BenchmarkConfig(part="stylize", quick=True, project_dir=project).parts()
        with pytest.raises(BenchOptionError, match=r"^part=stylize runs stylize.py of project_dir=.*: give the checkout"):
            stylize.main(config)


def test_precision_quick_reports_psnr_against_fp32(tmp_path, capsys):
    from benchmarks import precision
    from benchmarks.options import BenchmarkConfig

    (config,) = BenchmarkConfig(part="precision", quick=True, json=str(tmp_path / "p.json")).parts()
    assert precision.main(config) == 0
    rows = json.loads((tmp_path / "p.json").read_text())["rows"]
    assert [(r["precision"], r["size"]) for r in rows] == [("bf16", 64), ("fp16", 64)]
    for r in rows:  # fp16 keeps 3 more mantissa bits than bf16
        assert 20 < r["psnr_db"] < 100 and r["within_bound"] == (r["psnr_db"] >= 40 and r["mean_diff_255"] <= 1)
    assert rows[1]["psnr_db"] > rows[0]["psnr_db"] + 6
    assert "| random paper-sized | 64 | bf16 |" in capsys.readouterr().out


# ---------------------------------------------------------------------------- a multi-style ckpt


@pytest.fixture
def two_styles(tmp_path):
    return save_two_styles(tmp_path / "two.safetensors")


def test_a_multi_style_model_is_benchmarked_with_its_first_style_or_the_one_named(two_styles, model_file, capsys):
    from benchmarks.inference import model_or_random, style_argument
    from benchmarks.options import BenchmarkConfig, BenchOptionError
    from fast_style.errors import FastStyleError

    _, choice = model_or_random(str(two_styles))
    assert (choice.label, choice.weights.tolist()) == ("a", [1.0, 0.0])
    assert "two.safetensors holds 2 styles: benchmarking a (styles= picks another)" in capsys.readouterr().err
    _, choice = model_or_random(str(two_styles), "b")
    assert (choice.label, choice.weights.tolist()) == ("b", [0.0, 1.0])
    assert model_or_random(str(model_file))[1].weights is None
    # what the subprocess parts (stylize, video) pass on: stylize.py's styles= (an index), none for one style
    assert (style_argument(two_styles, "b"), style_argument(two_styles, None), style_argument(model_file, None)) == (
        "1", "0", "")
    with pytest.raises(FastStyleError, match="^styles=c: no style 'c' in two.safetensors; its styles: a, b"):
        model_or_random(str(two_styles), "c")
    with pytest.raises(BenchOptionError, match="^styles=b picks a style of a multi-style model; give it with ckpt=<model>$"):
        BenchmarkConfig(part="inference", styles="b").parts()


def test_inference_part_runs_the_chosen_style_on_every_path(two_styles, tmp_path, capsys):
    from benchmarks import inference
    from benchmarks.options import BenchmarkConfig

    (config,) = BenchmarkConfig(part="inference", quick=True, big=False, ckpt=str(two_styles), styles="b",
                                json=str(tmp_path / "i.json")).parts()
    assert inference.main(config) == 0
    data = json.loads((tmp_path / "i.json").read_text())
    assert data["style"] == "b" and all(row["max_diff_255"] <= 3 for row in data["sizes"])
    assert data["tiling"]["max_diff_255"] <= 2
    assert "; style b of a multi-style model" in capsys.readouterr().out
    inference.child_run(40, 56, "fp32", str(two_styles), 32, 1000, "b")  # the 8K run's child process, tiny
    child = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert child["tiled"] and child["output_shape"] == [1, 3, 40, 56]


def test_precision_part_names_the_style_of_a_multi_style_model(two_styles, tmp_path, capsys):
    from benchmarks import precision
    from benchmarks.options import BenchmarkConfig

    (config,) = BenchmarkConfig(part="precision", quick=True, ckpt=str(two_styles), styles="b",
                                json=str(tmp_path / "p.json")).parts()
    assert precision.main(config) == 0
    rows = json.loads((tmp_path / "p.json").read_text())["rows"]
    assert [r["model"] for r in rows[2:]] == ["two.safetensors (b)"] * 2
    assert all(r["psnr_db"] > 20 for r in rows)


def test_onnx_part_feeds_the_style_weights_to_the_export(two_styles, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from benchmarks import onnx
    from benchmarks.options import BenchmarkConfig
    from fast_style.io.export import export_model
    from fast_style.io.model_files import save_style_model

    def legacy_export(model, folder):  # the TorchScript-based exporter: a second here, the dynamo one ten
        result = export_model(save_style_model(model, folder / "bench.safetensors"), "onnx", folder / "bench.onnx",
                              exporter="legacy")
        return result.path, result.max_diff, result.exporter

    monkeypatch.setattr(onnx, "_export", legacy_export)
    (config,) = BenchmarkConfig(part="onnx", quick=True, ckpt=str(two_styles), styles="b",
                                json=str(tmp_path / "o.json")).parts()
    assert onnx.main(config) == 0
    data = json.loads((tmp_path / "o.json").read_text())
    assert data["style"] == "b" and all(row["onnx_raw_max_diff"] < 1e-3 for row in data["sizes"])


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (20-45 s)
@pytest.mark.slow
def test_stylize_and_video_parts_time_a_model_file_and_report_its_style(two_styles, tmp_path):
    """part=stylize: stylize.py against the eager reference loop on the named style of a
    multi-style file; part=video: frames/s and peak memory per clip, its first style unless told."""
    import torch

    from fast_style.devices import native_bf16

    out = tmp_path / "e2e.json"
    result = run_entry("scripts/benchmark.py", "part=stylize", "quick=true", f"ckpt={two_styles}", "styles=b",
                       f"json={out}", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    (run,) = data["runs"]
    assert run["reference"] > 0 and run["cold"] > 0 and run["warm"] > 0 and data["photos"] == 2 and data["size"] == 128
    for name in ("cold", "warm"):
        assert data[name]["psnr_db"] >= 40  # the accuracy bound of precision=auto: both ran style b
        if not any(note.startswith("precision=auto: bf16") for note in data["stylize_notes"][name]):
            assert data[name]["max_diff_255"] <= 2  # fp32 (onnxruntime) vs eager PyTorch: float rounding
    calibrated = [note for note in data["stylize_notes"]["cold"] if note.startswith("precision=auto:")]
    assert not calibrated or "cached for this model and device" in " ".join(data["stylize_notes"]["warm"])
    assert "| run | reference loop s |" in result.stdout and "warm vs loop" in result.stdout

    out = tmp_path / "video.json"
    result = run_entry("scripts/benchmark.py", "part=video", f"ckpt={two_styles}", "sizes=[64x36]", "seconds=[0.5,1]",
                       f"json={out}", cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "benchmarking a (styles= picks another)" in result.stderr
    assert "| clip | frames | frames/s | peak memory |" in result.stdout and "peak memory of the 1 s clip" in result.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [(r["size"], r["frames"], r["detail"]) for r in rows] == [("64x36", 15, "15 frames"), ("64x36", 30, "30 frames")]
    assert all(r["fps"] > 0 and 100 < r["peak_mb"] < 8000 for r in rows)
    # what precision=auto chose, from the child's notices (a CPU with native bf16 calibrates and says so)
    assert all(note.startswith(("precision=auto:", "runtime=auto:")) for r in rows for note in r["notes"])
    if native_bf16(torch.device("cpu")):
        assert all(any(note.startswith("precision=auto:") for note in r["notes"]) for r in rows), rows


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (20-45 s)
@pytest.mark.slow
def test_trainers_part_runs_train_py_per_variant_and_reads_its_steps_per_s(tmp_path):
    """part=trainers quick: train.py with the default and one explicit trainer; each row's
    speed is what that run's finished.json says, and the default's ratio to itself is 1."""
    out = tmp_path / "trainers.json"
    result = run_entry("scripts/benchmark.py", "part=trainers", "quick=true", f"json={out}", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    default, explicit = data["variants"]
    assert default["overrides"] == "trainer=auto" and default["ratio_to_default"] == 1.0
    assert explicit["overrides"].startswith("trainer=") and explicit["steps_per_s"][0] > 0
    assert data["fastest"] == explicit["overrides"] and isinstance(data["auto_within_5pct"], bool)
    assert "| `trainer=auto` |" in result.stdout


def test_trainers_part_refuses_sizes_without_a_batch():
    from benchmarks import trainers
    from benchmarks.options import BenchmarkConfig, BenchOptionError

    with pytest.raises(BenchOptionError, match=r"sizes=\[128\]: part=trainers takes SIZExBATCH"):
        trainers.size_and_batch(BenchmarkConfig(part="trainers", sizes=[128]))


@pytest.mark.heavy  # make test-all: one export (~40 s on 2 cores)
@pytest.mark.slow
def test_executorch_part_exports_loads_and_times_the_pte_beside_pytorch(tmp_path, two_styles):
    """part=executorch quick on a two-style model: one row, whose program was checked at export
    and whose timings and load memory come from the fresh measuring process."""
    out = tmp_path / "et.json"
    result = run_entry("scripts/benchmark.py", "part=executorch", "quick=true", f"ckpt={two_styles}",
                       f"json={out}", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| max_size | export |" in result.stdout
    (row,) = json.loads(out.read_text())["rows"]
    assert row["max_size"] == 160 and row["max_diff"] <= 1e-3 and row["file_mb"] > 0
    assert row["executorch_ms"] > 0 and row["torch_ms"] > 0 and row["load_mb"] > 0
