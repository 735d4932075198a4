"""The wheel holds the product only and works outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from helpers import REPO

USE_THE_WHEEL = """
import sys
sys.path.insert(0, sys.argv[1])
import torch, fast_style
from fast_style.io.model_files import save_style_model
from fast_style.nn.transformer import TransformerNet
assert fast_style.__file__.startswith(sys.argv[1]), fast_style.__file__
model = save_style_model(TransformerNet(width=8, num_residual=1), "m.safetensors")
(out,) = fast_style.stylize_images(model, [torch.rand(3, 20, 28)], precision="fp32")
print(tuple(out.shape), 'benchmarks' in sys.modules, 'studies' in sys.modules)
"""


@pytest.mark.slow
def test_the_wheel_holds_the_package_only_and_its_api_runs_outside_the_checkout(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("fast_style-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"fast_style", "hydra_plugins"}
    run = subprocess.run([sys.executable, "-c", USE_THE_WHEEL, str(tmp_path / "site")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "(3, 20, 28) False False", run.stdout
