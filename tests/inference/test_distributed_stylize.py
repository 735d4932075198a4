"""Stylizing a folder with two CPU processes (Lightning predict loop, gloo)."""

import pytest
from helpers import random_photo, run_entry

from fast_style.inference.distributed import Shard
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import save_style_model
from fast_style.nn.transformer import TransformerNet


def test_shards_are_disjoint_and_complete_without_padding():
    shards = [list(Shard(7, rank=r, world=3)) for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(i for s in shards for i in s) == list(range(7))


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (20-45 s)
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


def test_devices_run_honours_batch_size(tmp_path):
    """Each rank reads batch_size jobs at a time and runs same-size photos in one forward pass."""
    import torch

    from fast_style.inference.distributed import PredictJobs, job_loader
    from fast_style.inference.options import StylizeOptions
    from fast_style.inference.outcome import PHOTO, Job
    from fast_style.io.model_files import open_model

    for i in range(5):
        random_photo(32, 24 if i != 2 else 20, seed=i).save(tmp_path / f"{i}.png")
    jobs = [Job(tmp_path / f"{i}.png", tmp_path / "out" / f"{i}.png", PHOTO) for i in range(5)]
    options = StylizeOptions(batch_size=2, progress=False)
    batches = list(job_loader(jobs, options, rank=0, world=2))  # rank 0: jobs 0, 2, 4
    assert [[item.job.source.name for item in batch] for batch in batches] == [["0.png", "2.png"], ["4.png"]]
    rank1 = list(job_loader(jobs, options, rank=1, world=2))
    assert [[item.job.source.name for item in batch] for batch in rank1] == [["1.png", "3.png"]]

    model = save_style_model(TransformerNet(width=8, num_residual=1), tmp_path / "m.safetensors")
    module = PredictJobs(model=open_model(model), options=options)
    module.on_predict_start()
    calls = []
    runner = module.runner
    module.runner = lambda batch: calls.append(tuple(batch.shape)) or runner(batch)
    module.runner.needs_tiling = runner.needs_tiling
    outcomes = module.predict_step(rank1[0], 0)
    assert [o.status for o in outcomes] == ["done", "done"] and calls == [(2, 3, 24, 32)]
    assert torch.is_tensor(runner(torch.rand(1, 3, 8, 8)))
