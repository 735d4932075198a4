"""python stylize.py end to end, in a subprocess."""

from __future__ import annotations

import pytest
import torch
from helpers import random_photo, run_entry
from PIL import Image

from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import save_style_model
from fast_style.io.pytorch_examples import to_examples as examples_state_dict
from fast_style.nn.transformer import TransformerNet


@pytest.mark.slow
def test_stylize_entry_point(tmp_path):
    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual=1)
    save_style_model(net, tmp_path / "m.safetensors", metadata=StyleModelMetadata(style_name="wave"))
    torch.save(examples_state_dict(net), tmp_path / "old.pth")
    photos = tmp_path / "photos"
    photos.mkdir()
    random_photo(45, 37, seed=1).save(photos / "a.png")
    random_photo(40, 40, seed=2).save(photos / "b.jpg")
    (photos / "c.png").write_text("not an image")

    ok = run_entry("stylize.py", "ckpt=m.safetensors", "input=photos/a.png", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "done 1, skipped 0, failed 0" in ok.stdout
    assert Image.open(photos / "a_wave.png").size == (45, 37)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "old.pth", "photos"]  # no run folders, logs

    folder = run_entry("stylize.py", "ckpt=old.pth", "input=photos", "output=out", "format=png", cwd=tmp_path)
    assert folder.returncode == 1  # one file failed, the others were written
    assert "failed: photos/c.png" in folder.stderr and "done 3, skipped 0, failed 1" in folder.stdout  # a, b and a_wave (not an "old" output)
    assert (tmp_path / "out" / "b.png").is_file() and (tmp_path / "out" / "a.png").is_file()

    bad = run_entry("stylize.py", "ckpt=photos/c.png", "input=photos/a.png", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and bad.stderr.startswith("error: photos/c.png")
