"""Stylizing a folder with two CPU processes (Lightning predict loop, gloo)."""

import pytest

from fast_style.inference.executors import Shard
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import save_style_model
from fast_style.nn.transformer import TransformerNet

from conftest import random_photo, run_entry


def test_shards_are_disjoint_and_complete_without_padding():
    shards = [list(Shard(7, rank=r, world=3)) for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(i for s in shards for i in s) == list(range(7))


@pytest.mark.slow
def test_two_processes_write_every_image_once_and_rerun_skips(tmp_path):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for i in range(4):
        random_photo(40 + i, 36, seed=i).save(photos / f"p{i}.png")
    random_photo(30, 30, seed=9).save(photos / "sub" / "q.jpg")
    (photos / "broken.png").write_bytes(b"not an image")
    model = tmp_path / "m.safetensors"
    save_style_model(TransformerNet(width=8, num_residual=1), model, metadata=StyleModelMetadata(style_name="tiny"))
    out = tmp_path / "out"
    args = [f"ckpt={model}", f"input={photos}", f"output={out}", "devices=2", "progress=false", "precision=fp32"]
    first = run_entry("stylize.py", *args, cwd=tmp_path, timeout=240)
    assert first.returncode == 1, first.stderr[-3000:]  # the broken file failed, the rest were written
    assert "done 5, skipped 0, failed 1" in first.stdout
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == ["p0.png", "p1.png", "p2.png", "p3.png", "sub/q.jpg"]
    assert [line for line in first.stderr.splitlines() if line.startswith("failed:")] == [
        f"failed: {photos / 'broken.png'}: not a readable image (cannot identify image file '{photos / 'broken.png'}')"
    ]
    assert "terminate called" not in first.stderr
    again = run_entry("stylize.py", *args, cwd=tmp_path, timeout=240)
    assert "done 0, skipped 5, failed 1" in again.stdout
