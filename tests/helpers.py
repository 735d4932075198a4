"""What tests share besides fixtures: paths, tiny settings, sample images, the one Hydra compose
helper, the one tiny-module builder, the subprocess runner and skip_or_fail. Import it as ``import helpers``
(pyproject's ``pythonpath`` puts tests/ on sys.path); fixtures stay in conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CONFIG_DIR = REPO / "configs"

# Overrides that make a training run take seconds on a CPU: tiny net, random VGG,
# 32 px crops, no worker processes.
TINY_OVERRIDES = [
    "model=tiny",
    "loss_net.pretrained=false",
    "data.image_size=32",
    "data.resize=null",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.num_samples=2",
    "data.sample_size=32",
    "style.size=64",
    "trainer.accelerator=cpu",
    "trainer.enable_model_summary=false",
    "trainer.enable_progress_bar=false",
]

# The loss config of tests that build a loss network: two style taps, paper weights.
TINY_LOSS = {
    "content_layers": {"relu2_2": 1.0},
    "style_layers": {"relu1_2": 1.0, "relu2_2": 1.0},
    "content_weight": 1e5,
    "style_weight": 1e10,
    "tv_weight": 1e4,
}
TINY_MODEL = {"width": 8, "num_residual": 1, "norm": "instance", "upsample": "nearest"}
RANDOM_VGG = {"arch": "vgg16", "pretrained": False, "weights": None, "seed": 0, "pool": "max"}


def random_photo(width: int, height: int, seed: int) -> Image.Image:
    """A smooth random colour image (gradients plus blobs), RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    channels = [np.sin(xx * rng.uniform(2, 9) + yy * rng.uniform(2, 9) + rng.uniform(0, 6)) for _ in range(3)]
    array = ((np.stack(channels, -1) * 0.5 + 0.5) * 255).astype(np.uint8)
    return Image.fromarray(array, "RGB")


def two_style_net(seed: int = 0):
    """A tiny two-style TransformerNet whose norm rows differ (a fresh one holds two equal styles)."""
    import torch

    from fast_style.nn.transformer import ConditionalInstanceNorm2d, TransformerNet

    torch.manual_seed(seed)
    net = TransformerNet(width=8, num_residual=1, num_styles=2)
    with torch.no_grad():
        for norm in net.modules():
            if isinstance(norm, ConditionalInstanceNorm2d):
                norm.weight.normal_(1.0, 0.5)
                norm.bias.normal_(0.0, 0.5)
    return net.eval()


def save_two_styles(path: Path, seed: int = 0, **metadata) -> Path:
    """:func:`two_style_net` saved as a style model of styles "a" and "b" (named "a+b")."""
    from fast_style.io.metadata import StyleModelMetadata
    from fast_style.io.model_files import save_style_model

    meta = StyleModelMetadata(styles=["a", "b"], style_name="a+b", **metadata)
    return save_style_model(two_style_net(seed), path, metadata=meta)


def tiny_module(*, styles: tuple[str, ...] = ("t",), seed: int = 0, model: dict | None = None,
                loss: dict | None = None, style_image=None, **kwargs):
    """A StyleTransferModule small enough for a unit test: :data:`TINY_MODEL` (one conditional
    norm row per style when there are several), :data:`TINY_LOSS` updated with ``loss``, a seeded
    random VGG-16 and random 32x32 style images; ``seed`` fixes the net's init and the images."""
    import torch

    from fast_style.training.module import StyleTransferModule

    torch.manual_seed(seed)
    several = len(styles) > 1
    model = {**TINY_MODEL, **({"num_styles": len(styles)} if several else {}), **(model or {})}
    if style_image is None:
        images = [torch.rand(1, 3, 32, 32) for _ in styles]
        style_image = images if several else images[0]
    extra = {"styles": list(styles)} if several else {}
    return StyleTransferModule(model=model, loss={**TINY_LOSS, **(loss or {})}, loss_net=RANDOM_VGG,
                               style={"name": "+".join(styles)}, style_image=style_image, **extra, **kwargs)


def compose(config_name: str, overrides: list[str] = (), *, hydra: bool = False, config_dir: Path = CONFIG_DIR):
    """``<config_dir>/<config_name>.yaml`` (the product's configs/ unless told) composed as the
    entry point would, with the schemas registered; ``hydra=True`` keeps the ``hydra`` node
    (resolvable run paths). Composition errors propagate as Hydra raises them."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from fast_style.config import register_schemas

    register_schemas()
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir)):
        return hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=hydra)


def compose_train(overrides: list[str] = ()):
    """The train config composed as Hydra would, with the hydra node resolvable."""
    return compose("train", overrides, hydra=True)


def run_entry(script: str, *args: str, cwd: Path, timeout: float = 240, env: dict | None = None):
    """Run a root entry point (train.py, stylize.py, scripts/...) in a subprocess; only tests
    marked ``slow`` may (conftest refuses a subprocess in any other test)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=full_env)


def tensorboard_hparams(run_dir: Path) -> tuple[dict, list[str], dict[str, list[tuple[int, float]]]]:
    """What TensorBoard reads from the event files of ``run_dir`` (one run): (the hparams of its
    session {key: value}, the metric names its experiment lists, {scalar tag: [(step, value)]})."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    values = {key: getattr(value, value.WhichOneof("kind")) for key, value in start.hparams.items()}
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    return values, [info.name.tag for info in experiment.metric_infos], scalars


def is_channels_last(tensor) -> bool:
    """Whether ``tensor`` is laid out NHWC (``torch.channels_last``)."""
    import torch

    return tensor.is_contiguous(memory_format=torch.channels_last)


def forked_at_once(target, *args, count: int = 2, timeout: float = 120) -> list:
    """Run ``target(barrier, results, *args)`` in ``count`` forked processes that pass a
    common barrier together (so they race), and return what each put on ``results``;
    every process must exit 0. Forked children of a process that ran torch's thread pool
    may hang in it: a ``target`` must not run torch compute."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(count), context.Queue()
    jobs = [context.Process(target=target, args=(barrier, results, *args)) for _ in range(count)]
    for job in jobs:
        job.start()
    found = [results.get(timeout=timeout) for _ in jobs]
    for job in jobs:
        job.join(timeout=30)
        assert job.exitcode == 0, f"a forked job exited with {job.exitcode}"
    return found


def skip_or_fail(message: str, *, required_by: str) -> None:
    """Skip with ``message`` where a real component is missing, or fail where the environment
    variable ``required_by`` is 1 (.ci/run sets them, so that CI never passes by skipping)."""
    import pytest

    if os.environ.get(required_by) == "1":
        pytest.fail(message)
    pytest.skip(message)
