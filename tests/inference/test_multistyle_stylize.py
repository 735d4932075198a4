"""Stylizing with a multi-style model: picking, mixing, masks, network-space strength, exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import random_photo, run_entry
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.inference.api import stylize, stylize_images
from fast_style.inference.mixing import read_mask
from fast_style.inference.options import StylizeOptions
from fast_style.inference.runners import settings
from fast_style.inference.runners.calibrated import CalibratedStylizer
from fast_style.inference.runners.rules import make_runner
from fast_style.io.export import export_model, onnx_bytes
from fast_style.io.images import pil_to_tensor
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import open_model, save_style_model
from fast_style.nn.transformer import ConditionalInstanceNorm2d, TransformerNet

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def _two_styles(seed: int, **kwargs) -> TransformerNet:
    """A tiny two-style network whose norm rows differ (a freshly built one holds two equal styles)."""
    torch.manual_seed(seed)
    net = TransformerNet(width=8, num_residual=1, num_styles=2, **kwargs)
    with torch.no_grad():
        for norm in net.modules():
            if isinstance(norm, ConditionalInstanceNorm2d):
                norm.weight.normal_(1.0, 0.5)
                norm.bias.normal_(0.0, 0.5)
        if net.input_skip is not None:  # a trained one: the head is no longer zero, the gain not 1
            net.head.conv.weight.normal_(0, 0.05)
            net.input_skip.copy_(torch.tensor([0.8, 1.1, 0.9]))
    return net.eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    meta = StyleModelMetadata(styles=["a", "b"], style_name="a+b")
    save_style_model(_two_styles(0), root / "two.safetensors", metadata=meta)
    save_style_model(_two_styles(1, input_skip=True), root / "skip.safetensors", metadata=meta)
    torch.manual_seed(0)
    save_style_model(TransformerNet(width=8, num_residual=1), root / "wave.safetensors",
                     metadata=StyleModelMetadata(style_name="wave"))
    random_photo(96, 64, seed=1).save(root / "p.png")
    mask = np.full((32, 48, 3), 255, np.uint8)  # half the photo's size: resized (nearest) to it
    mask[:, :24] = 0  # dark left half: the first entry; light right half: the second
    mask[:, 24] = 128  # an anti-aliased edge column joins the nearest colour
    Image.fromarray(mask).save(root / "mask.png")
    return root


def _run(model, files, **options) -> torch.Tensor:
    """The photo p.png stylized in memory, in fp32 (the formulas below are exact there;
    ``precision=auto`` would pick bf16 on a CPU that has it), PyTorch unless ``runtime``
    says otherwise (the in-memory ONNX export costs a second per call)."""
    (image,) = stylize_images(model, [files / "p.png"], **{"runtime": "torch", "precision": "fp32", **options})
    return image


def _net(path) -> TransformerNet:
    return open_model(path).network


def _image(path) -> torch.Tensor:
    return pil_to_tensor(Image.open(path))


@pytest.mark.slow
def test_entry_point_mixes_masks_and_says_what_is_wrong(files):
    mix = run_entry("stylize.py", "ckpt=two.safetensors", "input=p.png", "style=a:0.7,b:0.3", "runtime=torch", cwd=files)
    assert mix.returncode == 0, mix.stderr
    assert "style: a 0.7 + b 0.3 (weights normalised to sum 1" in mix.stderr
    assert (_image(files / "p_a0.7+b0.3.png") - _run(files / "two.safetensors", files, style="a:0.7,b:0.3")).abs().max() <= 1 / 255
    masked = run_entry("stylize.py", "ckpt=two.safetensors", "input=p.png", "style=[a,b]", "mask=mask.png", cwd=files)
    assert masked.returncode == 0, masked.stderr
    assert "mask mask.png: #000000 -> a, #ffffff -> b" in masked.stderr
    expected = _run(files / "two.safetensors", files, style=["a", "b"], mask=files / "mask.png")
    assert (_image(files / "p_a-b.png") - expected).abs().max() <= 1 / 255
    unknown = run_entry("stylize.py", "ckpt=two.safetensors", "input=p.png", "style=c", cwd=files)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: style=c: no style 'c' in two.safetensors; its styles: a, b (or their indices 0..1)"


def test_picking_a_style_names_the_output_after_it(files, tmp_path):
    summary = stylize(files / "two.safetensors", files / "p.png", output=str(tmp_path) + "/", style="b", runtime="torch")
    assert [p.name for p in summary.done] == ["p_b.png"]
    assert (_image(tmp_path / "p_b.png") - _run(files / "two.safetensors", files, style="b")).abs().max() <= 1 / 255


def test_a_mix_of_one_and_zero_is_the_first_style_alone(files):
    model = files / "two.safetensors"
    alone = _run(model, files, style="a")
    assert (_run(model, files, style="a:1,b:0") - alone).abs().max() <= 1 / 255
    assert (_run(model, files, style="a:1,b:0", runtime="auto") - alone).abs().max() <= 1 / 255  # in-memory ONNX
    assert (_run(model, files, style="b") - alone).abs().mean() > 5 / 255  # the styles differ
    assert torch.equal(_run(model, files, style=0), alone)  # an index picks too


def test_mixing_happens_in_the_network_not_on_the_images(files):
    model = files / "two.safetensors"
    a, b = _run(model, files, style="a"), _run(model, files, style="b")
    mix = _run(model, files, style="a:3,b:1")  # normalised: 0.75, 0.25
    assert (mix - _run(model, files, style="a:0.75,b:0.25")).abs().max() <= 1e-6
    assert (mix - (0.75 * a + 0.25 * b)).abs().mean() > 1 / 255


def test_each_mask_region_takes_its_style(files):
    model = files / "two.safetensors"
    a, b = _run(model, files, style="a"), _run(model, files, style="b")
    out = _run(model, files, style=["a", "b"], mask=files / "mask.png")
    left, right = slice(0, 36), slice(60, 96)  # away from the border at x = 48
    for region, own, other in ((left, a, b), (right, b, a)):  # not equal to it: the norms' statistics are the whole image's
        assert (out[..., region] - own[..., region]).abs().mean() < (out[..., region] - other[..., region]).abs().mean()


def test_mask_colours_are_the_most_frequent_darkest_first(tmp_path):
    mask = np.zeros((20, 30, 3), np.uint8)
    mask[:, 10:20] = (200, 30, 30)  # red: luma 85
    mask[:, 20:] = (250, 250, 250)
    mask[0, :5] = (190, 40, 30)  # a few stray pixels near red
    Image.fromarray(mask).save(tmp_path / "m.png")
    regions = read_mask(tmp_path / "m.png", 3, max_pixels=10**6)
    assert regions.colours == [(0, 0, 0), (200, 30, 30), (250, 250, 250)]
    labels = regions.labels
    assert labels[5, 0] == 0 and labels[5, 15] == 1 and labels[5, 25] == 2 and labels[0, 2] == 1
    assert regions.resized(10, 15).tolist() == labels[1::2, 1::2].long().tolist()  # nearest: pixel centres


@pytest.mark.parametrize("name, options", [
    ("two", {"style": "a:0.3,b:0.7"}),
    ("skip", {"style": ["b", "a:0.5,b:0.5"], "mask": "mask.png", "strength": 0.6}),  # network-space strength too
])
def test_tiled_equals_untiled_with_a_mix_and_a_mask(files, name, options):
    options = {**options, "mask": files / options["mask"]} if "mask" in options else options
    whole = _run(files / f"{name}.safetensors", files, pixel_budget=0, **options)
    tiled = _run(files / f"{name}.safetensors", files, pixel_budget=1000, tile_size=32, **options)
    assert (tiled - whole).abs().max() <= 0.1 / 255


def test_strength_in_the_network_scales_the_head(files):
    model, photo = files / "skip.safetensors", pil_to_tensor(Image.open(files / "p.png"))
    net = _net(model)
    gain = net.input_skip.detach().view(3, 1, 1)
    with torch.no_grad():
        y = net(photo[None], torch.tensor([1.0, 0.0]))[0]
    half = _run(model, files, style="a", strength=0.5)  # auto: network, the model has input_skip
    assert (half - (0.5 * y + 0.5 * gain * photo).clamp(0, 1)).abs().max() <= 1e-5
    assert (_run(model, files, style="a", strength=0.0) - (gain * photo).clamp(0, 1)).abs().max() <= 1e-5
    assert (_run(model, files, style="a", strength=0.5, runtime="auto") - half).abs().max() <= 1e-4  # onnxruntime too
    pixel = _run(model, files, style="a", strength=0.5, strength_space="pixel")
    assert (pixel - (0.5 * y.clamp(0, 1) + 0.5 * photo)).abs().max() <= 1e-4
    with pytest.raises(FastStyleError, match="strength_space=network: two.safetensors has no input_skip"):
        _run(files / "two.safetensors", files, style="a", strength=0.5, strength_space="network")


def test_precision_auto_calibrates_with_the_style_weights(files, monkeypatch):
    monkeypatch.setattr(settings, "auto_candidates", lambda device: [torch.bfloat16, torch.float32])
    options = StylizeOptions(styles=["a", "b"], mask=str(files / "mask.png"))
    runner = make_runner(open_model(files / "two.safetensors"), options)
    assert isinstance(runner, CalibratedStylizer)
    photo = pil_to_tensor(Image.open(files / "p.png"))[None]
    fp32 = _run(files / "two.safetensors", files, style=["a", "b"], mask=files / "mask.png")
    assert (runner(photo)[0] - fp32).abs().mean() <= 1 / 255


def test_video_frames_take_the_mask_at_their_size(files):
    from fast_style.inference.clips import stylize_frames

    options = StylizeOptions(styles=["a", "b"], mask=str(files / "mask.png"), runtime="torch")
    runner = make_runner(open_model(files / "two.safetensors"), options)
    frame = np.asarray(Image.open(files / "p.png").convert("RGB"))
    out = stylize_frames(runner, np.stack([frame, frame]), (96, 64), options)  # a batch of two frames
    expected = _run(files / "two.safetensors", files, style=["a", "b"], mask=files / "mask.png")
    assert out.shape == (2, 64, 96, 3)
    assert (torch.from_numpy(out[1]).permute(2, 0, 1) / 255 - expected).abs().max() <= 1 / 255


def test_devices_runs_carry_the_style_choice(files, tmp_path):
    """devices>1: each rank builds its runner with the run's style choice (here a mask)."""
    from fast_style.inference.distributed import PredictJobs
    from fast_style.inference.mixing import choose_styles
    from fast_style.inference.outcome import PHOTO, Job
    from fast_style.inference.reading import read

    model = open_model(files / "two.safetensors")
    options = StylizeOptions(styles=["a", "b"], mask=str(files / "mask.png"), runtime="torch")
    module = PredictJobs(model=model, options=options, styles=choose_styles(model, options))
    module.on_predict_start()
    (outcome,) = module.predict_step([read(Job(files / "p.png", tmp_path / "out.png", PHOTO), options)], 0)
    assert outcome.status == "done"
    expected = _run(files / "two.safetensors", files, style=["a", "b"], mask=files / "mask.png")
    assert (_image(tmp_path / "out.png") - expected).abs().max() <= 1 / 255


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exports_take_style_weights_and_match_pytorch(files, tmp_path, fmt):
    result = export_model(files / "two.safetensors", fmt, tmp_path / f"two.{'onnx' if fmt == 'onnx' else 'pt'}",
                          exporter="legacy")
    assert result.max_diff <= 1e-4
    exported = open_model(result.path, allow_torchscript=True)
    assert exported.num_styles == 2 and exported.metadata.styles == ["a", "b"]
    net, x = _net(files / "two.safetensors"), torch.rand(2, 3, 37, 50, generator=torch.Generator().manual_seed(5))
    for weights in ([1.0, 0.0], [0.0, 1.0], [0.25, 0.75]):
        w = torch.tensor(weights)
        with torch.no_grad():
            assert (exported.runtime(x, w) - net(x, w)).abs().max() <= 1e-4
    mix = _run(exported, files, style="a:0.7,b:0.3", runtime="auto")
    assert (mix - _run(files / "two.safetensors", files, style="a:0.7,b:0.3")).abs().max() <= 1e-4
    with pytest.raises(FastStyleError, match="not a per-pixel map"):
        _run(exported, files, style=["a", "b"], mask=files / "mask.png", runtime="auto")
    with pytest.raises(FastStyleError, match="holds 2 styles"):
        _run(exported, files, runtime="auto")


def test_one_style_models_are_unchanged(files):
    model = files / "wave.safetensors"
    assert torch.equal(_run(model, files, style="wave"), _run(model, files))
    graph = onnx.load_from_string(onnx_bytes(_net(model))).graph
    assert [i.name for i in graph.input] == ["image"]  # no style input: exported exactly as before


@pytest.mark.parametrize("model, options, message", [
    ("two", {}, r"^two.safetensors holds 2 styles \(a, b\): pick one with style=a, or mix them with style='a:0.7,b:0.3'$"),
    ("two", {"style": ["a", "b"]}, "is a list, which gives one style per colour of mask="),
    ("two", {"style": "a:-1,b:1"}, "a has a negative weight"),
    ("two", {"style": "a:0,b:0"}, "the weights sum to 0"),
    ("two", {"style": "a", "mask": "mask.png"}, r"mask=.*mask.png needs style=\[...\] with one entry per mask colour"),
    ("two", {"style": ["a", "b", "a", "b"], "mask": "mask.png"}, "has 3 colour.s., fewer than the 4 entries"),
    ("two", {"style": ["a", "b"], "mask": "p.txt"}, "cannot be read as an image"),
    # issue 33 item 6: mixing strings and masks, by class
    ("two", {"style": "a:nan,b:1"}, r"the weight 'nan' of a is not a finite number"),
    ("two", {"style": "a:inf,b:1"}, r"the weight 'inf' of a is not a finite number"),
    ("two", {"style": "a:1e400"}, r"the weight '1e400' of a is not a finite number"),
    ("two", {"style": "a:0.5,"}, r"^style=a:0.5,: entry 2 is empty; write name:weight entries separated by commas"),
    ("two", {"style": ","}, r"^style=,: entry 1 is empty"),
    ("two", {"style": " "}, r"^style= : entry 1 is empty"),
    ("two", {"style": "a:0.3,b:0.2,a:0.5"}, r"^style=a:0.3,b:0.2,a:0.5: a is given twice; name each style once"),
    ("two", {"style": "a:0.5,0:0.5"}, r"a is given twice"),
    ("two", {"style": "c:1,a:1"}, r"no style 'c' in two.safetensors; its styles: a, b"),
    ("two", {"style": "a:"}, r"'a:' is not name:weight"),
    ("two", {"style": ["a", "b:nan"], "mask": "mask.png"}, r"the weight 'nan' of b is not a finite number"),
    ("two", {"style": ["a", "b"], "mask": "one.png"}, r"has 1 colour\(s\), fewer than the 2 entries"),
    ("two", {"style": ["a", "b"], "mask": "empty.png"}, r"mask=.*empty.png: cannot be read as an image \(.*empty file"),
    ("two", {"style": ["a", "b"], "mask": "missing.png"}, r"mask=.*missing.png: cannot be read as an image \(.*no such file"),
    ("two", {"style": ["a", "b"], "mask": "folder.png"}, r"is a folder, not an image"),
    ("two", {"style": ["a", "b"], "mask": "mask.png", "max_pixels": 1000},
     r"mask=.*mask.png: is 48x32 px, above max_pixels=1000; .*smaller mask"),
    ("two", {"style": ["a", "b"], "mask": "mask.png", "runtime": "onnx"}, "per-pixel styles run in PyTorch only"),
    ("wave", {"style": "a"}, "wave.safetensors holds one style, wave; drop style= or pass style=wave"),
    ("wave", {"style": ["a", "b"], "mask": "mask.png"}, "holds one style; a mask chooses among the styles"),
    ("wave", {"strength_space": "banana"}, "^strength_space=banana: choose auto, network, pixel$"),
])
def test_user_errors_are_one_line(files, model, options, message):
    (files / "p.txt").write_text("not an image")
    Image.new("RGB", (30, 20), (10, 10, 10)).save(files / "one.png")
    (files / "empty.png").write_bytes(b"")
    (files / "folder.png").mkdir(exist_ok=True)
    options = {k: (files / v if k == "mask" else v) for k, v in options.items()}
    with pytest.raises(FastStyleError, match=message) as caught:
        stylize(files / f"{model}.safetensors", files / "p.png", output=str(files / "never.png"), **options)
    assert "\n" not in str(caught.value)
    assert not (files / "never.png").exists()


def test_mix_weights_are_normalised_without_overflow(files):
    from fast_style.inference.mixing import parse_mix

    model = open_model(files / "two.safetensors")
    for spec in ("a:1e308,b:1e308", "a:1e-320,b:1e-320", "a,b", "0:2,1:2"):
        assert parse_mix(spec, ["a", "b"], model=model).tolist() == [0.5, 0.5], spec


def test_a_mask_of_another_shape_is_stretched_with_one_warning(files, tmp_path, caplog):
    wide = np.full((10, 100, 3), 255, np.uint8)
    wide[:, :50] = 0
    Image.fromarray(wide).save(tmp_path / "wide.png")
    small = np.asarray(Image.open(files / "mask.png").resize((24, 16), Image.Resampling.NEAREST))
    Image.fromarray(small).save(tmp_path / "small.png")  # the photo's shape, a quarter of its size: no warning
    for _ in range(2):
        stretched = _run(files / "two.safetensors", files, style=["a", "b"], mask=tmp_path / "wide.png")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and all("wide.png is 100x10 px" in w and "96x64" in w and "stretched" in w
                                      for w in warnings), warnings  # once per call, not per image
    caplog.clear()
    _run(files / "two.safetensors", files, style=["a", "b"], mask=tmp_path / "small.png")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    # stretched, its split at x = 50 of 100 falls where mask.png's does (48 of 96): the same regions
    assert torch.equal(stretched, _run(files / "two.safetensors", files, style=["a", "b"], mask=files / "mask.png"))
