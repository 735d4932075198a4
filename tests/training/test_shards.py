"""Data pipeline: shards (write, read, resume), and training from them."""

import json
import logging
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO, TINY_OVERRIDES, random_photo, run_entry

from fast_style.training.data import ContentDataModule, ContentImages, ShardImages
from fast_style.training.index import NoImagesError, scan_images
from fast_style.training.prepare import prepare_shards
from fast_style.training.shards import (
    ShardError,
    ShardSet,
    ShardSettings,
    default_folder,
    encode,
    write_manifest,
    write_shard,
)


def _photos(folder, count, *, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        random_photo(size[0] + i % 5, size[1] + i % 3, seed=i).save(folder / f"p{i:03d}.png")
    return folder


# ------------------------------------------------------------------ shard files


@pytest.mark.parametrize("fmt", ["raw", "jpeg"])
def test_shard_round_trip_keeps_shapes_and_pixels(tmp_path, fmt):
    rng = np.random.default_rng(0)
    arrays = [np.asarray(random_photo(w, h, seed=i)) for i, (w, h) in enumerate([(37, 20), (20, 41), (64, 64)])]
    arrays[1] = rng.integers(0, 256, arrays[1].shape, dtype=np.uint8) if fmt == "raw" else arrays[1]
    settings = ShardSettings(resize=None, format=fmt, shard_size=2)
    records = []
    for shard, chunk in enumerate([arrays[:2], arrays[2:]]):
        items = [(f"{shard}-{i}.png", (encode(a, settings=settings), a.shape[0], a.shape[1])) for i, a in enumerate(chunk)]
        records.append(write_shard(tmp_path, shard, items + [("bad.jpg", "unreadable")], settings=settings))
    write_manifest(tmp_path, settings=settings, source_root="x", records=records)
    shards = ShardSet(tmp_path)
    assert len(shards) == 3 and shards.manifest["num_skipped"] == 2
    assert shards.sources == ["0-0.png", "0-1.png", "1-0.png"]
    for i, array in enumerate(arrays):
        got = shards.image(i)
        assert got.shape == array.shape and got.dtype == np.uint8 and shards.shape(i) == array.shape[:2]
        if fmt == "raw":
            assert np.array_equal(got, array)
        else:
            assert np.abs(got.astype(int) - array).mean() < 2.0
    clone = pickle.loads(pickle.dumps(shards))  # as sent to a spawned worker
    assert np.array_equal(clone.image(2), shards.image(2))


def test_shard_crops_equal_folder_crops_for_the_same_seed(tmp_path):
    root = _photos(tmp_path / "photos", 5, size=(50, 36))
    files, _ = scan_images(root)
    for resize in (None, 40):
        done = prepare_shards(root=root, settings=ShardSettings(resize=resize), workers=1, show_progress=False)
        folder = ContentImages(files, image_size=32, resize=resize, hflip=True)
        shards = ShardImages(ShardSet(done.folder), image_size=32, hflip=True)
        for index in range(5):
            random.seed(index)
            a = folder[index]
            random.seed(index)
            assert torch.equal(a, shards[index]), (resize, index)


def test_preparation_skips_bad_photos_and_counts_them(tmp_path, caplog):
    root = _photos(tmp_path / "photos", 4)
    (root / "empty.jpg").write_bytes(b"")
    good = (root / "p000.png").read_bytes()
    (root / "truncated.png").write_bytes(good[: len(good) // 2])  # passes the header check, fails to decode
    with caplog.at_level(logging.WARNING):
        done = prepare_shards(root=root, settings=ShardSettings(resize=24, shard_size=2), workers=1, show_progress=False)
    assert done.manifest["num_images"] == 4 and done.manifest["num_skipped"] == 2
    assert caplog.text.count("truncated.png") == 1 and caplog.text.count("empty.jpg") == 1
    assert all(min(ShardSet(done.folder).shape(i)) == 24 for i in range(4))


def test_other_settings_are_refused_then_rebuilt_with_overwrite(tmp_path):
    root = _photos(tmp_path / "photos", 3)
    out = tmp_path / "shards"
    prepare_shards(root=root, settings=ShardSettings(resize=24), output=out, workers=1, show_progress=False)
    again = prepare_shards(root=root, settings=ShardSettings(resize=24), output=out, workers=1, show_progress=False)
    assert again.written == 0
    with pytest.raises(ShardError, match=r"made with resize=24, format=raw, not resize=20.*overwrite=true"):
        prepare_shards(root=root, settings=ShardSettings(resize=20), output=out, workers=1, show_progress=False)
    rebuilt = prepare_shards(root=root, settings=ShardSettings(resize=20), output=out, workers=1, overwrite=True,
                             show_progress=False)
    assert rebuilt.written == 1 and ShardSet(out).settings.resize == 20


def test_missing_folder_and_unknown_format_are_one_line_errors(tmp_path):
    with pytest.raises(NoImagesError, match="nowhere: folder does not exist"):
        prepare_shards(root=tmp_path / "nowhere", settings=ShardSettings(resize=24), show_progress=False)
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(ShardError, match="format='png': choose raw or jpeg"):
        ShardSettings(resize=24, format="png")


def test_datamodule_finds_shards_and_refuses_a_mismatched_resize(tmp_path, caplog):
    root = _photos(tmp_path / "photos", 6)
    prepare_shards(root=root, settings=ShardSettings(resize=24, shard_size=4), workers=1, show_progress=False)
    dm = ContentDataModule(root=str(root), image_size=16, resize=24, batch_size=3, num_workers=0, num_samples=2,
                           sample_size=16)
    dm.setup("fit")
    assert dm.shard_set is not None and len(dm.shard_set) == 6 and dm.files == []
    assert next(iter(dm.train_dataloader())).shape == (3, 3, 16, 16)
    assert dm.sample_images().shape == (2, 3, 16, 16)
    # another resize: the set under root is not used (and a warning says so) ...
    other = ContentDataModule(root=str(root), image_size=16, resize=32, num_workers=0)
    with caplog.at_level(logging.WARNING):
        other.setup("fit")
    assert other.shard_set is None and len(other.files) == 6 and "resize-24" in caplog.text
    # ... and naming it explicitly is a one-line error with the fix
    named = ContentDataModule(root=str(root), image_size=16, resize=32, shards=str(default_folder(root, 24)))
    with pytest.raises(ShardError, match=r"made with data.resize=24, but this run has data.resize=32; prepare"):
        named.setup("fit")
    with pytest.raises(ShardError, match="no complete shard set there"):
        ContentDataModule(root=str(root), resize=24, shards=str(tmp_path / "none")).setup("fit")
    plain = ContentDataModule(root=str(root), image_size=16, resize=24, shards=False)
    plain.setup("fit")
    assert plain.shard_set is None and len(plain.files) == 6


def test_cache_true_prepares_the_shards_once(tmp_path):
    root = _photos(tmp_path / "photos", 3)
    dm = ContentDataModule(root=str(root), image_size=16, resize=20, num_workers=0, cache=True)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.shard_set is not None and dm.shard_set.folder == default_folder(root, 20)


# ------------------------------------------------------------------ tampered shard files


def _prepared(tmp_path, count=6, fmt="raw"):
    root = _photos(tmp_path / "photos", count)
    settings = ShardSettings(resize=20, shard_size=2, format=fmt)
    folder = prepare_shards(root=root, settings=settings, output=tmp_path / "shards", workers=1,
                            show_progress=False).folder
    return root, settings, folder


def _edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


MANIFEST_TAMPERS = {
    "not json": lambda path: path.write_text("{ nope"),
    "a list": lambda path: path.write_text("[]"),
    "a shard outside the folder": lambda path: _edit_json(path, lambda m: m.update(shards=["../../x", *m["shards"][1:]])),
    "settings of the wrong type": lambda path: _edit_json(path, lambda m: m["settings"].update(resize="big", cap=[])),
    "totals that are not counts": lambda path: _edit_json(path, lambda m: m.update(num_images="many")),
}


@pytest.mark.parametrize("tamper", MANIFEST_TAMPERS, ids=list(MANIFEST_TAMPERS))
def test_a_tampered_manifest_is_a_one_line_error_with_the_fix(tmp_path, tamper):
    root, _, folder = _prepared(tmp_path)
    MANIFEST_TAMPERS[tamper](folder / "manifest.json")
    data = ContentDataModule(root=str(root), image_size=16, resize=20, num_workers=0, shards=str(folder))
    with pytest.raises(ShardError, match=r"manifest.json: unreadable or damaged .*prepare again") as error:
        data.setup("fit")
    assert "\n" not in str(error.value)


SHARD_TAMPERS = {
    "offset past the data": lambda rows: rows[0].__setitem__(0, 10**9),
    "raw length not height x width x 3": lambda rows: rows[0].__setitem__(1, rows[0][1] - 3),
    "a negative size": lambda rows: rows[0].__setitem__(2, -20),
    "a row of strings": lambda rows: rows.__setitem__(0, ["0", "1", "2", "3"]),
    "one row fewer than its count": lambda rows: rows.pop(),
}


@pytest.mark.parametrize("tamper", SHARD_TAMPERS, ids=list(SHARD_TAMPERS))
def test_a_tampered_shard_index_is_refused_then_redone_by_a_preparation(tmp_path, tamper):
    root, settings, folder = _prepared(tmp_path)
    clean = {p.name: p.read_bytes() for p in folder.iterdir()}
    _edit_json(folder / "shard-00001.json", lambda record: SHARD_TAMPERS[tamper](record["images"]))
    (folder / "manifest.json").unlink()  # as if the preparation stopped after writing that shard
    with pytest.raises(ShardError, match="no manifest.json"):
        ShardSet(folder)
    resumed = prepare_shards(root=root, settings=settings, output=folder, workers=1, show_progress=False)
    assert resumed.written == 1 and resumed.reused == 2
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == clean
    # tampered under a complete manifest: opening the set names the shard instead of misreading it
    _edit_json(folder / "shard-00002.json", lambda record: SHARD_TAMPERS[tamper](record["images"]))
    with pytest.raises(ShardError, match="shard shard-00002 is missing or damaged"):
        ShardSet(folder)


@pytest.mark.parametrize("change", [
    lambda plan, outside: plan["sources"].__setitem__(0, "../" + outside.name),
    lambda plan, outside: plan["sources"].__setitem__(0, str(outside)),
    lambda plan, outside: plan.update(source_root=str(outside.parent)),
    lambda plan, outside: plan.update(sources="p000.png"),
], ids=["dot-dot source", "absolute source", "another root", "sources not a list"])
def test_a_tampered_plan_never_reads_outside_the_root(tmp_path, monkeypatch, change):
    from fast_style.training import prepare

    root, settings, folder = _prepared(tmp_path)
    outside = tmp_path / "secret.png"
    random_photo(30, 30, seed=99).save(outside)
    (folder / "manifest.json").unlink()
    (folder / "shard-00000.json").unlink()  # an interrupted preparation with its plan
    _edit_json(folder / "plan.json", lambda plan: change(plan, outside))
    read = []
    real = prepare.load_photo
    monkeypatch.setattr(prepare, "load_photo", lambda path, **kw: read.append(Path(path)) or real(path, **kw))
    prepare_shards(root=root, settings=settings, output=folder, workers=1, show_progress=False)
    assert read and all(path.parent == root for path in read)
    assert sorted(ShardSet(folder).sources) == sorted(p.name for p in root.iterdir())


# ------------------------------------------------------------------ resuming after SIGKILL

SLOW_CHILD = """
import sys, time
from fast_style.training import prepare
from fast_style.training.shards import ShardSettings
real = prepare.load_photo
def slow(path, *, settings):
    time.sleep(0.04)
    return real(path, settings=settings)
prepare.load_photo = slow
prepare.prepare_shards(root=sys.argv[1], settings=ShardSettings(resize=24, shard_size=4, format=sys.argv[3]),
                       output=sys.argv[2], workers=1, show_progress=False)
"""


@pytest.mark.slow
def test_killed_preparation_resumes_and_equals_a_clean_run(tmp_path):
    fmt = "raw"
    root = _photos(tmp_path / "photos", 48)
    (root / "bad.png").write_bytes(b"junk")
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    child = subprocess.Popen([sys.executable, "-c", SLOW_CHILD, str(root), str(killed), fmt], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (killed / "shard-00003.json").exists():
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read().decode()[-2000:]
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (killed / "manifest.json").exists()
    done_before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in killed.glob("shard-*.json")}
    assert 4 <= len(done_before) < 12
    resumed = prepare_shards(root=root, settings=ShardSettings(resize=24, shard_size=4, format=fmt), output=killed,
                             workers=2, show_progress=False)
    assert resumed.reused >= len(done_before) and resumed.reused + resumed.written == 12
    for name, stamp in done_before.items():  # completed shards were not redone
        path = killed / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp
    assert not [p for p in killed.iterdir() if "fast-style-tmp" in p.name]
    prepare_shards(root=root, settings=ShardSettings(resize=24, shard_size=4, format=fmt), output=clean, workers=1,
                   show_progress=False)
    names = sorted(p.name for p in clean.iterdir())
    assert names == sorted(p.name for p in killed.iterdir()) and len(names) == 2 + 2 * 12
    for name in names:
        assert (killed / name).read_bytes() == (clean / name).read_bytes(), name
    assert ShardSet(killed).manifest["num_skipped"] == 1


# ------------------------------------------------------------------ end to end


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (12-40 s)
@pytest.mark.slow
def test_prepare_data_script_then_train_py_reads_the_shards(tmp_path, image_folder, style_file):
    prepared = run_entry("scripts/prepare_data.py", f"data.root={image_folder}", "data.resize=40", "shard_size=2",
                         "workers=1", cwd=tmp_path, timeout=120)
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    assert "5 images, 3 shards" in prepared.stdout
    shards = image_folder / ".fast-style-shards" / "resize-40"
    assert (shards / "manifest.json").is_file()
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("data.resize")]
    run = run_entry("train.py", *overrides, "data.resize=40", "style=custom", "style.name=sharded",
                    f"style.image={style_file}", f"data.root={image_folder}", f"paths.root_dir={tmp_path}",
                    f"hydra.run.dir={tmp_path / 'run'}", "trainer.max_steps=2", "callbacks.style_samples.every_n_steps=0",
                    cwd=tmp_path, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"training images: 5 from shards in {shards}" in log
    assert (tmp_path / "checkpoints" / "sharded.safetensors").is_file()
