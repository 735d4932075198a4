"""Shared fixtures: tiny image folders, the shared sample data, composed configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
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


def random_photo(width: int, height: int, seed: int) -> Image.Image:
    """A smooth random colour image (gradients plus blobs), RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    channels = [np.sin(xx * rng.uniform(2, 9) + yy * rng.uniform(2, 9) + rng.uniform(0, 6)) for _ in range(3)]
    array = ((np.stack(channels, -1) * 0.5 + 0.5) * 255).astype(np.uint8)
    return Image.fromarray(array, "RGB")


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Five small RGB photos, one in a subfolder."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(4):
        random_photo(48 + 3 * i, 40 + 5 * i, seed=i).save(root / f"photo_{i}.png")
    random_photo(60, 44, seed=9).save(root / "sub" / "nested.jpg")
    return root


@pytest.fixture
def style_file(tmp_path: Path) -> Path:
    path = tmp_path / "painting.png"
    random_photo(64, 48, seed=123).save(path)
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A tiny seeded style model (width 8, one residual block) named "wave"."""
    import torch

    from fast_style.io.metadata import StyleModelMetadata
    from fast_style.io.model_files import save_style_model
    from fast_style.nn.transformer import TransformerNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "wave.safetensors"
    save_style_model(TransformerNet(width=8, num_residual=1), path, metadata=StyleModelMetadata(style_name="wave"))
    return path


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


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "content").is_dir():
        pytest.skip(f"sample data not found at {SHARED_DATA} (the shared/ folder beside the checkout)")
    return SHARED_DATA


def compose_train(overrides: list[str]):
    """The train config composed as Hydra would, with the hydra node resolvable."""
    from hydra import compose, initialize_config_dir

    from fast_style.config import register_schemas

    register_schemas()

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def run_entry(script: str, *args: str, cwd: Path, timeout: float = 240, env: dict | None = None):
    """Run a root entry point (train.py, stylize.py, scripts/...) in a subprocess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


# ------------------------------------------------------------------ one-node SLURM cluster

SLURM_JOBS: list[str] = []  # "id name state restarts" of every job the cluster ran, for the summary


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real one-node SLURM cluster (munged, slurmctld, slurmd) for the whole session.

    Skipped, with how to run the tests, where it cannot start (not root, packages
    missing); FAST_STYLE_REQUIRE_SLURM=1 (set by .ci/run) turns that skip into a failure.
    At the end every job is cancelled, the queue drained and the three daemons stopped
    by PID, also when tests failed.
    """
    from slurm_cluster import OneNodeCluster, why_unavailable

    reason = why_unavailable()
    if reason:
        message = f"SLURM tests need a one-node cluster: {reason}; as root: apt-get install slurm-wlm munge && make test"
        if os.environ.get("FAST_STYLE_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    cluster = OneNodeCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        SLURM_JOBS.extend(cluster.job_summaries())
        cluster.stop()


@pytest.fixture
def slurm(slurm_cluster):
    """The session's cluster, with an empty queue before and after the test."""
    slurm_cluster.drain()
    yield slurm_cluster
    slurm_cluster.drain()


def pytest_terminal_summary(terminalreporter):
    if SLURM_JOBS:
        terminalreporter.section("SLURM jobs (one-node cluster)")
        for line in SLURM_JOBS:
            terminalreporter.write_line(line)
