"""Which runner stylize.py picks (runtime, precision per device) and the accuracy bound."""

from __future__ import annotations

import math

import pytest
import torch

from fast_style.errors import FastStyleError
from fast_style.inference.options import OptionError, StylizeOptions
from fast_style.inference.precision import (
    MAX_MEAN_DIFF,
    MIN_PSNR_DB,
    Agreement,
    auto_candidates,
    calibration_crop,
    is_flat,
    psnr,
)
from fast_style.inference.runners import settings
from fast_style.inference.runners.base import InferenceOptionError
from fast_style.inference.runners.calibrated import CalibratedStylizer
from fast_style.inference.runners.onnxrt import OnnxStylizer
from fast_style.inference.runners.pytorch import Stylizer
from fast_style.inference.runners.rules import make_runner
from fast_style.io.model_files import open_model
from fast_style.nn.transformer import TransformerNet

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def photo(height=40, width=52, seed=0):
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


def test_psnr_and_mean_bound_formulas():
    a = torch.full((1, 3, 8, 8), 0.5)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 0.01) == pytest.approx(40.0, abs=1e-3)  # 10 log10(1 / 1e-4)
    assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-3)
    just = Agreement.of(a + 0.01, a)  # 40 dB, but a mean shift of 2.55/255
    assert just.psnr_db >= MIN_PSNR_DB - 1e-6 and not just.within_bound
    small = Agreement.of(a + 0.5 * MAX_MEAN_DIFF, a)
    assert small.within_bound
    assert not Agreement.of(a * float("nan"), a).within_bound


def test_calibration_crop_keeps_small_images_and_crops_big_ones_around_the_centre():
    small = photo(30, 20)
    assert calibration_crop(small).shape == (1, 3, 30, 20)
    big = torch.arange(2 * 3 * 1000 * 1500, dtype=torch.float32).reshape(2, 3, 1000, 1500)
    crop = calibration_crop(big, pixels=100 * 100)
    assert crop.shape == (1, 3, 100, 100)
    assert torch.equal(crop, big[:1, :, 450:550, 700:800])
    strip = calibration_crop(torch.zeros(1, 3, 10, 100000), pixels=100 * 100)
    assert strip.shape[-2] == 10 and strip.shape[-2] * strip.shape[-1] <= 2 * 100 * 100


def test_calibration_crop_takes_the_image_with_the_most_detail():
    detailed = photo(40, 52, seed=3)
    batch = torch.cat([torch.zeros(1, 3, 40, 52), detailed, 0.5 + 0.2 * detailed])
    assert torch.equal(calibration_crop(batch), detailed)
    assert is_flat(torch.zeros(1, 3, 40, 52)) and is_flat(torch.full((1, 3, 40, 52), 0.3) + 0.002 * detailed)
    assert not is_flat(detailed) and not is_flat(0.5 + 0.1 * detailed)


def test_auto_candidates_end_with_fp32_and_need_native_bf16_on_the_cpu(monkeypatch):
    monkeypatch.setattr("fast_style.inference.precision.native_bf16", lambda device: False)
    assert auto_candidates(torch.device("cpu")) == [torch.float32]
    monkeypatch.setattr("fast_style.inference.precision.native_bf16", lambda device: True)
    assert auto_candidates(torch.device("cpu")) == [torch.bfloat16, torch.float32]
    assert auto_candidates(torch.device("cuda")) == [torch.float16, torch.bfloat16, torch.float32]


def _model(model_file):
    return open_model(model_file)


@pytest.fixture
def cpu_without_native_bf16(monkeypatch):
    """The choice as made on a CPU without AVX512-BF16/AMX, whatever this one has."""
    monkeypatch.setattr(settings, "auto_candidates", lambda device: [torch.float32])


@pytest.fixture
def cpu_with_native_bf16(monkeypatch):
    """The choice as made on a CPU with native bf16 (bf16 is emulated where it is not)."""
    monkeypatch.setattr(settings, "auto_candidates", lambda device: [torch.bfloat16, torch.float32])


@pytest.mark.usefixtures("cpu_without_native_bf16")
def test_default_cpu_runner_is_onnxruntime_and_matches_pytorch(model_file):
    runner = make_runner(_model(model_file), StylizeOptions())
    assert isinstance(runner, OnnxStylizer)
    torch_runner = make_runner(_model(model_file), StylizeOptions(runtime="torch"))
    assert isinstance(torch_runner, Stylizer)
    for shape in ((1, 40, 52), (2, 33, 47), (1, 3, 5)):
        x = photo(*shape[1:], seed=shape[1])
        x = x.repeat(shape[0], 1, 1, 1)
        assert (runner(x) - torch_runner(x)).abs().max().item() < 1e-4


@pytest.mark.usefixtures("cpu_without_native_bf16")
def test_onnx_runner_tiles_huge_images_in_pytorch(model_file):
    options = StylizeOptions(pixel_budget=64 * 64, tile_size=32, tile_blend=4)
    runner = make_runner(_model(model_file), options)
    assert isinstance(runner, OnnxStylizer) and runner.needs_tiling(80, 80) and not runner.needs_tiling(60, 60)
    calls = []
    runner.run = lambda x: calls.append(x.shape) or torch.zeros_like(x)
    x = photo(80, 90)
    tiled = runner(x)
    assert calls == []  # never through onnxruntime
    untiled = make_runner(_model(model_file), StylizeOptions(runtime="torch", pixel_budget=0))(x)
    assert (tiled - untiled).abs().max().item() < 1e-3


@pytest.mark.usefixtures("cpu_without_native_bf16")
def test_torch_only_options_keep_pytorch_and_conflict_with_runtime_onnx(model_file):
    assert isinstance(make_runner(_model(model_file), StylizeOptions(channels_last=True)), Stylizer)
    assert isinstance(make_runner(_model(model_file), StylizeOptions(precision="bf16")), Stylizer)
    assert isinstance(make_runner(_model(model_file), StylizeOptions(runtime="onnx")), OnnxStylizer)
    for bad in ({"channels_last": True}, {"precision": "bf16"}):
        with pytest.raises(InferenceOptionError, match="runtime=onnx"):
            make_runner(_model(model_file), StylizeOptions(runtime="onnx", **bad))
    with pytest.raises(OptionError, match="runtime=tensorrt: choose auto, torch, onnx"):
        StylizeOptions(runtime="tensorrt").check()


@pytest.mark.usefixtures("cpu_without_native_bf16")
def test_a_failed_export_falls_back_to_pytorch_with_one_line(model_file, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise FastStyleError("exporter exploded")

    monkeypatch.setattr("fast_style.io.export.onnx_bytes", broken)
    runner = make_runner(_model(model_file), StylizeOptions())
    assert isinstance(runner, Stylizer)
    assert "onnxruntime not used (exporter exploded); running in PyTorch" in capsys.readouterr().err
    with pytest.raises(InferenceOptionError, match="runtime=onnx: exporter exploded"):
        make_runner(_model(model_file), StylizeOptions(runtime="onnx"))


def _calibrated(net: TransformerNet, candidates):
    def make(dtype):
        return Stylizer(net, dtype=dtype)

    return CalibratedStylizer(make, candidates)


def test_calibration_keeps_bf16_where_it_meets_the_bound(capsys):
    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual=1, input_skip=True).eval()  # passes the photo through
    runner = _calibrated(net, [torch.bfloat16, torch.float32])
    out = runner(photo(64, 64))
    assert runner.chosen.dtype == torch.bfloat16 and runner.agreement.within_bound
    assert out.dtype == torch.float32 and "precision=auto: bf16 on cpu" in capsys.readouterr().err


def test_calibration_falls_back_to_fp32_for_a_random_paper_sized_network(capsys):
    torch.manual_seed(0)
    net = TransformerNet().eval()
    runner = _calibrated(net, [torch.bfloat16, torch.float32])
    x = photo(96, 96)
    out = runner(x)
    assert runner.chosen.dtype == torch.float32
    err = capsys.readouterr().err
    assert "not bf16" in err and "precision=auto: fp32 on cpu" in err
    assert torch.equal(out, Stylizer(net)(x))
    runner(x)  # chosen once per run
    assert capsys.readouterr().err == ""


def test_flat_images_run_in_fp32_and_leave_the_choice_to_the_first_with_detail(capsys):
    """A clip that opens on black: those frames say nothing about bf16, so they run in fp32
    (exactly the fp32 output) and the first frame with detail decides."""
    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual=1, input_skip=True).eval()
    runner = _calibrated(net, [torch.bfloat16, torch.float32])
    black = torch.zeros(2, 3, 64, 64)
    faded = torch.full((1, 3, 64, 64), 0.1) + 0.003 * photo(64, 64)
    for flat in (black, faded):
        assert torch.equal(runner(flat), Stylizer(net)(flat))
        assert runner.chosen is None and runner.agreement is None
    err = capsys.readouterr().err
    assert err.count("precision=auto: the first image is flat") == 1 and "fp32 until one with detail" in err
    runner(torch.cat([black[:1], photo(64, 64)]))
    assert runner.chosen.dtype == torch.bfloat16 and runner.agreement.within_bound
    assert "precision=auto: bf16 on cpu" in capsys.readouterr().err


@pytest.mark.usefixtures("cpu_with_native_bf16")
def test_calibrated_runner_is_used_where_the_device_has_candidates(model_file):
    runner = make_runner(_model(model_file), StylizeOptions())
    assert isinstance(runner, CalibratedStylizer)
    assert isinstance(make_runner(_model(model_file), StylizeOptions(precision="fp32", runtime="torch")), Stylizer)
    assert isinstance(make_runner(_model(model_file), StylizeOptions(precision="fp32")), OnnxStylizer)
    assert isinstance(make_runner(_model(model_file), StylizeOptions(runtime="onnx")), OnnxStylizer)  # auto: fp32
    assert isinstance(make_runner(_model(model_file), StylizeOptions(precision="bf16")), Stylizer)


@pytest.mark.usefixtures("cpu_with_native_bf16")
def test_with_native_bf16_a_model_that_fails_the_bound_runs_fp32_in_onnxruntime(tmp_path, capsys):
    from fast_style.io.model_files import save_style_model

    torch.manual_seed(0)
    net = TransformerNet().eval()  # random and paper-sized: bf16 misses the bound (as in the test above)
    save_style_model(net, tmp_path / "paper.safetensors")
    runner = make_runner(_model(tmp_path / "paper.safetensors"), StylizeOptions())
    x = photo(96, 96)
    out = runner(x)
    assert isinstance(runner.chosen, OnnxStylizer)
    err = capsys.readouterr().err
    assert "not bf16" in err and "precision=auto: fp32 on cpu (onnxruntime)" in err
    assert (out - Stylizer(net)(x)).abs().max().item() < 1e-4
    torch_only = make_runner(_model(tmp_path / "paper.safetensors"), StylizeOptions(runtime="torch"))
    torch_only(x)
    assert isinstance(torch_only.chosen, Stylizer) and torch_only.chosen.dtype == torch.float32


def test_default_pixel_budget_grows_with_free_gpu_memory_only(monkeypatch):
    from fast_style.inference.runners.settings import device_pixel_budget

    net = TransformerNet(width=32, num_residual=1)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    default = StylizeOptions()
    assert device_pixel_budget(default, cpu, net) == StylizeOptions.pixel_budget
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (100 * 2**30, 140 * 2**30))
    # half of 100 GiB at 300 bytes per pixel: ~179 MP, capped at max_pixels
    assert device_pixel_budget(default, cuda, net) == StylizeOptions.max_pixels
    assert device_pixel_budget(StylizeOptions(max_pixels=10**9), cuda, net) == int(50 * 2**30 / 300)
    assert device_pixel_budget(StylizeOptions(max_pixels=10**9, batch_size=4), cuda, net) == int(50 * 2**30 / 1200)
    assert device_pixel_budget(StylizeOptions(pixel_budget=1000), cuda, net) == 1000  # set by hand: kept
    assert device_pixel_budget(StylizeOptions(pixel_budget=0), cuda, net) == 0
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**30, 8 * 2**30))
    assert device_pixel_budget(default, cuda, net) == StylizeOptions.pixel_budget  # never below the default
