"""Shared fixtures: tiny image folders, a tiny model file, the shared sample data, the
one-node SLURM cluster; and the rule that only tests marked ``slow`` start processes.
What tests share besides fixtures is in helpers.py."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import pytest
from helpers import SHARED_DATA, random_photo, skip_or_fail

if os.environ.get("PYTEST_XDIST_WORKER"):
    # several test processes share the cores: one thread each (and in the processes they
    # start), since OpenMP threads that wait for work spin on a core another process needs
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _own_cache_folder(tmp_path_factory, monkeypatch):
    """Each test (and every process it starts) gets an empty fast-style cache folder, so
    no test reads what another left, nor writes into the user's ``~/.cache``."""
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _python_processes_only_in_slow_tests(request, monkeypatch):
    """A test that starts a Python process (an entry point, a worker, a compiler's pool)
    is slow and must say so (``@pytest.mark.slow``), so that ``make test-fast`` stays fast.
    Small tools a library asks (``uname -p`` for ``platform.processor()``) are not refused."""
    if request.node.get_closest_marker("slow") or request.node.get_closest_marker("slurm"):
        return
    real_init = subprocess.Popen.__init__

    def guarded(self, args, *rest, **kwargs):
        words = [args] if isinstance(args, str | os.PathLike) else [str(a) for a in args]
        program = Path(str(words[0]).split()[0]).name
        if program.startswith("python") or any(str(w).endswith(".py") for w in words):
            raise AssertionError(f"{request.node.nodeid} starts a Python process: mark it @pytest.mark.slow")
        real_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


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


@pytest.fixture(scope="module")
def reuse_random_vgg():
    """For modules that build many loss networks (``pytestmark = pytest.mark.usefixtures(...)``):
    build each seeded random VGG once per module and hand out copies (the loss
    builder in fast_style.nn.losses constructs its VGGFeatures through this)."""
    from fast_style.nn import losses as module
    from fast_style.nn.vgg import VGGFeatures

    built = {}

    def cached(**kwargs):
        key = repr(sorted(kwargs.items()))
        if key not in built:
            built[key] = VGGFeatures(**kwargs)
        return copy.deepcopy(built[key])

    patch = pytest.MonkeyPatch()
    patch.setattr(module, "VGGFeatures", cached)
    yield cached
    patch.undo()


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "content").is_dir():
        pytest.skip(f"sample data not found at {SHARED_DATA} (the shared/ folder beside the checkout)")
    return SHARED_DATA


# ------------------------------------------------------------------ headless Chromium


@pytest.fixture(scope="session")
def chromium(request):
    """A real headless Chromium (browser.py) for the session; the tests that use it are
    marked ``browser`` and run in ``make test-all``. A test that needs other launch flags
    (a fake camera) launches its own with browser.chromium_executable() and CHROMIUM_ARGS."""
    from browser import CHROMIUM_ARGS, chromium_executable, why_no_browser

    reason = why_no_browser()
    if reason:
        skip_or_fail(f"browser tests need a headless Chromium: {reason}", required_by="FAST_STYLE_REQUIRE_BROWSER")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def chromium_page(chromium):
    """A fresh page (its own context) in the session's Chromium, closed after the test."""
    context = chromium.new_context()
    page = context.new_page()
    yield page
    context.close()


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
        skip_or_fail(f"SLURM tests need a one-node cluster: {reason}; as root: apt-get install slurm-wlm munge && make test",
                     required_by="FAST_STYLE_REQUIRE_SLURM")
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
