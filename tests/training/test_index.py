"""The training folder's file index: cached header checks, kept in the cache folder (never in
the photo folder unless asked), safe with read-only folders, concurrent jobs and tampered files."""

import contextlib
import json
import os
import shutil
import subprocess

import pytest
from helpers import forked_at_once, random_photo
from PIL import Image

from fast_style.cache import cache_root
from fast_style.io.images import images_below
from fast_style.training import index as index_module
from fast_style.training.data import ContentDataModule
from fast_style.training.index import INDEX_NAME, index_path, scan_images


def _photos(folder, count, *, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        random_photo(size[0] + i % 5, size[1] + i % 3, seed=i).save(folder / f"p{i:03d}.png")
    return folder


def _count_headers(monkeypatch):
    calls = []
    real = index_module.readable_header

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(index_module, "readable_header", counting)
    return calls


def _tree(folder):
    """Every path below ``folder`` with its size and mtime: what a read-only user must leave alone."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_second_scan_of_2000_files_opens_no_header_and_writes_nothing_in_the_folder(tmp_path, monkeypatch):
    root = tmp_path / "many"
    (root / "sub").mkdir(parents=True)
    tiny = Image.new("RGB", (4, 4), (10, 20, 30))
    for i in range(2000):
        tiny.save(root / ("sub" if i % 2 else ".") / f"{i:05d}.png")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    before = _tree(root)
    calls = _count_headers(monkeypatch)
    first = scan_images(root)
    assert len(calls) == 2001 and index_path(root).is_file()
    assert index_path(root).parent == cache_root() / "index" and _tree(root) == before
    calls.clear()
    second = scan_images(root)
    assert calls == [] and second == first
    assert len(second[0]) == 2000 and [p.name for p, _ in second[1]] == ["broken.jpg"]
    assert second[0] == [p for p in images_below(root) if p.name != "broken.jpg"]  # the order it always had


def test_index_follows_added_removed_and_modified_files(tmp_path, monkeypatch):
    root = _photos(tmp_path / "photos", 6)
    calls = _count_headers(monkeypatch)
    scan_images(root)
    assert len(calls) == 6
    calls.clear()
    random_photo(33, 33, seed=50).save(root / "added.png")
    (root / "p001.png").unlink()
    (root / "p002.png").write_bytes(b"now broken")  # modified: size and mtime change
    good, bad = scan_images(root)
    assert sorted(p.name for p in calls) == ["added.png", "p002.png"]
    assert [p.name for p in good] == ["added.png", "p000.png", "p003.png", "p004.png", "p005.png"]
    assert [p.name for p, _ in bad] == ["p002.png"]
    cached = json.loads(index_path(root).read_text())["files"]
    assert sorted(cached) == ["added.png", "p000.png", "p002.png", "p003.png", "p004.png", "p005.png"]
    # a rewrite with the same size but a new mtime is checked again too
    calls.clear()
    stat = (root / "p003.png").stat()
    os.utime(root / "p003.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    scan_images(root)
    assert [p.name for p in calls] == ["p003.png"]
    calls.clear()
    scan_images(root, cache=False)
    assert len(calls) == 6


def test_index_cache_root_keeps_it_in_the_folder_and_an_old_one_there_is_read_not_written(tmp_path, monkeypatch):
    root = _photos(tmp_path / "photos", 4)
    calls = _count_headers(monkeypatch)
    scan_images(root, cache="root")
    assert len(calls) == 4 and (root / INDEX_NAME).is_file() and not index_path(root).exists()
    # the default finds the index an older version left in the folder, copies it to the cache, leaves it be
    calls.clear()
    kept = (root / INDEX_NAME).read_bytes()
    scan_images(root)
    assert calls == [] and index_path(root).is_file() and (root / INDEX_NAME).read_bytes() == kept


def test_the_cache_folder_follows_fast_style_cache_then_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path / "mine"))
    assert index_path(tmp_path).parent == tmp_path / "mine" / "index"
    monkeypatch.delenv("FAST_STYLE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert index_path(tmp_path).parent == tmp_path / "xdg" / "fast-style" / "index"
    # one entry per resolved root: the same folder by another spelling shares it, another folder does not
    assert index_path(tmp_path / "a" / "..") == index_path(tmp_path) != index_path(tmp_path / "a")


@contextlib.contextmanager
def _read_only_view(source, target):
    """``target``: ``source`` on a read-only bind mount (root: permissions do not stop root),
    else the folder itself with its write bits removed."""
    if os.geteuid() != 0:
        for path in [source, *source.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        yield source
        return
    target.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"no read-only folder to test with: mount --bind failed ({mounted.stderr.decode().strip()})")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=True, capture_output=True)
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_training_data_from_a_read_only_folder(tmp_path):
    source = _photos(tmp_path / "photos", 5)
    (source / "broken.jpg").write_bytes(b"not a jpeg")
    with _read_only_view(source, tmp_path / "ro") as root:
        with pytest.raises(OSError):
            (root / "probe").write_bytes(b"")  # the folder really is read-only
        data = ContentDataModule(root=str(root), image_size=24, resize=32, batch_size=2, num_workers=0,
                                 num_samples=2, sample_size=24)
        data.setup()
        batch = next(iter(data.train_dataloader()))
        assert batch.shape == (2, 3, 24, 24) and len(data.files) == 5 and len(data.bad_files) == 1
        assert index_path(root).is_file() and not (root / INDEX_NAME).exists()
        assert data.sample_images().shape == (2, 3, 24, 24)


def _scan_in_a_job(barrier, results, root):
    barrier.wait()  # both jobs check the headers at the same moment
    good, bad = scan_images(root, show_progress=False)
    results.put(([p.name for p in good], [p.name for p, _ in bad]))


def test_two_jobs_indexing_one_folder_at_once_both_work_and_agree(tmp_path):
    root = _photos(tmp_path / "photos", 300, size=(8, 8))
    for i in range(0, 300, 30):
        (root / f"p{i:03d}.png").write_bytes(b"truncated")
    found = forked_at_once(_scan_in_a_job, root, count=2)
    assert found[0] == found[1] and len(found[0][0]) == 290 and len(found[0][1]) == 10
    entries = json.loads(index_path(root).read_text())["files"]  # one whole index, no temporary left
    assert len(entries) == 300 and [p.name for p in index_path(root).parent.iterdir()] == [index_path(root).name]


@pytest.mark.parametrize("tamper", [
    "not json {", "[1, 2, 3]", '{"version": 1, "root": "ROOT", "files": []}',
    '{"version": 1, "root": "ROOT", "files": {"p000.png": "yes", "p001.png": [1, 2], "p002.png": [1.5, 2, null]}}',
    '{"version": 1, "root": "ROOT", "files": {"../outside.png": [SIZE, MTIME, null], "p003.png": ["a", 0, null]}}',
    '{"version": 1, "root": "/another/root", "files": {}}',
])
def test_a_tampered_index_is_rebuilt_never_trusted(tmp_path, monkeypatch, tamper):
    root = _photos(tmp_path / "photos", 4)
    outside = tmp_path / "outside.png"
    shutil.copy(root / "p000.png", outside)
    stat = outside.stat()
    where = index_path(root)
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(tamper.replace("ROOT", str(root.resolve())).replace("SIZE", str(stat.st_size))
                     .replace("MTIME", str(stat.st_mtime_ns)))
    calls = _count_headers(monkeypatch)
    good, bad = scan_images(root)
    assert sorted(p.name for p in good) == ["p000.png", "p001.png", "p002.png", "p003.png"] and bad == []
    assert all(path.parent == root for path in calls + good)  # nothing read outside the root
    assert len(calls) == 4  # every malformed or missing entry was checked again
    rebuilt = json.loads(where.read_text())
    assert rebuilt["root"] == str(root.resolve()) and sorted(rebuilt["files"]) == [p.name for p in good]
