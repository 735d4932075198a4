"""Training on bad input ends with the right outcome: damaged checkpoints, options out
of range, a huge style image, a data.root that holds no photos (issue #13)."""

import shutil
import time

import pytest
import torch
from helpers import TINY_OVERRIDES, compose_train, random_photo, run_entry
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.io.images import IMAGE_EXTENSIONS
from fast_style.training.checkpoints import set_aside, verify_checkpoint
from fast_style.training.train import train

# ------------------------------------------------------------------ damaged checkpoints


class _TouchOnLoad:
    """Unpickling this object (weights_only=False) would create ``path``: code in a checkpoint."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _run_args(root, run_dir, *extra):
    return [
        *TINY_OVERRIDES,
        "style=custom",
        "style.name=tiny_style",
        f"style.image={root / 'painting.png'}",
        f"data.root={root / 'photos'}",
        f"paths.root_dir={root}",
        f"hydra.run.dir={run_dir}",
        "callbacks.model_checkpoint.every_n_train_steps=2",
        "callbacks.style_samples.every_n_steps=0",
        "~logger",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run folder stopped after step 5: step_0000002.ckpt, step_0000004.ckpt, last.ckpt (5)."""
    root = tmp_path_factory.mktemp("trained")
    (root / "photos").mkdir()
    for i in range(3):
        random_photo(48 + 3 * i, 40 + 5 * i, seed=i).save(root / "photos" / f"photo_{i}.png")
    random_photo(64, 48, seed=123).save(root / "painting.png")
    run = run_entry("train.py", *_run_args(root, root / "run", "trainer.max_steps=5"), cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]
    (root / "run" / "finished.json").unlink()  # as if the job had been killed after step 5
    names = sorted(p.name for p in (root / "run" / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step_0000002.ckpt", "step_0000004.ckpt"]
    return root


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """(root, run folder) copies of the trained run, to damage."""
    root = tmp_path / "root"
    shutil.copytree(trained_run, root)
    return root, root / "run"


def _damage(kind, last, tmp_path):
    if kind == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
        return "unreadable (truncated or damaged archive)"
    if kind == "zero-byte":
        last.write_bytes(b"")
        return "empty file (0 bytes)"
    marker = tmp_path / "code_ran"
    torch.save({"state_dict": {}, "global_step": 9, "hyper_parameters": {"model": {}}, "x": _TouchOnLoad(marker)}, last)
    return "unreadable (it would load the Python object io.open, which can run code; refused, nothing in it was run)"


@pytest.mark.slow
# make test runs the truncated file; the other two kinds resume the same way and run in make test-all
@pytest.mark.parametrize("kind", ["truncated", pytest.param("zero-byte", marks=pytest.mark.heavy),
                                  pytest.param("code", marks=pytest.mark.heavy)])
def test_damaged_last_ckpt_is_moved_aside_and_the_newest_step_resumed(run_copy, tmp_path, kind):
    root, run_dir = run_copy
    ckpts = run_dir / "checkpoints"
    reason = _damage(kind, ckpts / "last.ckpt", tmp_path)
    damaged = (ckpts / "last.ckpt").read_bytes()

    result = run_entry("train.py", *_run_args(root, run_dir, "trainer.max_steps=6"), cwd=root)

    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "code_ran").exists()
    warnings = [line for line in result.stdout.splitlines() if "[WARNING]" in line and "last.ckpt" in line]
    assert len(warnings) == 1, result.stdout
    assert warnings[0].endswith(f"{ckpts / 'last.ckpt'}: {reason}; moved it to last.ckpt.corrupt and resuming "
                                "from step_0000004.ckpt (step 4)")
    assert "training from step 4 to 6" in result.stdout  # the newest periodic checkpoint, not step 0
    assert (ckpts / "last.ckpt.corrupt").read_bytes() == damaged  # the evidence, byte for byte
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "last.ckpt", "last.ckpt.corrupt", "step_0000002.ckpt", "step_0000004.ckpt", "step_0000006.ckpt"]
    assert verify_checkpoint(ckpts / "last.ckpt").global_step == 6


def test_the_code_checkpoint_would_really_run_code(tmp_path):
    """The test above proves something: loading the file without weights_only creates the marker."""
    _damage("code", tmp_path / "evil.ckpt", tmp_path)
    torch.load(tmp_path / "evil.ckpt", weights_only=False)
    assert (tmp_path / "code_ran").is_file()


@pytest.mark.slow
@pytest.mark.heavy  # make test-all: resumes a real run (12-15 s on 2 cores)
def test_damaged_last_ckpt_without_a_good_step_ckpt_stops_with_one_line(run_copy):
    root, run_dir = run_copy
    ckpts = run_dir / "checkpoints"
    (ckpts / "last.ckpt").write_bytes(b"")
    for periodic in ckpts.glob("step_*.ckpt"):
        periodic.write_bytes(periodic.read_bytes()[:1000])

    result = run_entry("train.py", *_run_args(root, run_dir, "trainer.max_steps=6"), cwd=root)

    last = ckpts / "last.ckpt"
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {last}: empty file (0 bytes) and no usable step_*.ckpt beside it; move it away to start this run "
        f"from step 0 (mv {last} {last}.corrupt), or pass ckpt_path=<a good .ckpt>")
    assert "Traceback" not in result.stderr
    assert last.read_bytes() == b""  # not replaced by a fresh step-0 checkpoint
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step_0000002.ckpt", "step_0000004.ckpt"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["truncated", "code"])
def test_explicit_damaged_ckpt_path_is_one_line_and_writes_nothing(trained_run, tmp_path, image_folder, style_file, kind):
    bad = tmp_path / "bad.ckpt"
    shutil.copy(trained_run / "run" / "checkpoints" / "last.ckpt", bad)
    reason = _damage(kind, bad, tmp_path)
    damaged = bad.read_bytes()
    with pytest.raises(FastStyleError) as error:
        train(_cfg(tmp_path, image_folder, style_file, f"ckpt_path={bad}"))
    assert str(error.value) == (f"ckpt_path={bad}: {reason}; give a .ckpt that train.py wrote "
                                "(<run>/checkpoints/last.ckpt or step_*.ckpt)")
    assert not (tmp_path / "code_ran").exists()
    assert bad.read_bytes() == damaged
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
@pytest.mark.heavy  # make test-all: resumes a real run (12-15 s on 2 cores)
def test_resuming_with_a_different_network_keeps_last_ckpt(run_copy):
    """Lightning's failed restore used to end in a fresh step-0 last.ckpt over the good one."""
    root, run_dir = run_copy
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    result = run_entry("train.py", *_run_args(root, run_dir, "trainer.max_steps=6", "model.width=16"), cwd=root)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {last}: trained with a different network or loss (model.width=8 there, 16 here); resume with "
        "the settings it was trained with, or train in a new run folder")
    assert last.read_bytes() == before


def test_set_aside_never_overwrites_an_earlier_moved_file(tmp_path):
    last = tmp_path / "last.ckpt"
    names = []
    for content in (b"first", b"second", b"third"):
        last.write_bytes(content)
        names.append(set_aside(last).name)
    assert names == ["last.ckpt.corrupt", "last.ckpt.corrupt-2", "last.ckpt.corrupt-3"]
    assert [(tmp_path / n).read_bytes() for n in names] == [b"first", b"second", b"third"]
    assert not last.exists()


# ------------------------------------------------------------------ option ranges


def _cfg(tmp_path, image_folder, style_file, *extra):
    return compose_train(TINY_OVERRIDES + [
        "style=custom", f"style.image={style_file}", f"data.root={image_folder}", f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'run'}", "trainer.max_steps=2", *extra])


CROP = "must be at least 32 px (the transform network downsamples by 4 and VGG pools 3 times before relu4_3); the paper uses 256"


@pytest.mark.parametrize("override,message", [
    ("data.batch_size=0", "data.batch_size=0: must be a whole number of at least 1 per device (the paper: 4)"),
    ("data.batch_size=-3", "data.batch_size=-3: must be a whole number of at least 1 per device (the paper: 4)"),
    ("data.image_size=7", f"data.image_size=7: training crops {CROP}"),
    ("data.sample_size=4", "data.sample_size=4: sample images must be at least 32 px (the default is 256)"),
    ("data.num_workers=-1", "data.num_workers=-1: must be 0 (load in the main process) or more worker processes"),
    ("data.resize=0", "data.resize=0: must be null (keep the resolution) or a shorter-side length in px, e.g. 256"),
    ("data.index_cache=folder", "data.index_cache=folder: must be true (the file index in the cache folder), root "
                                "(in data.root) or false (check every file's header at each start)"),
    ("style.size=0", "style.size=0: must be at least 32 px, or null for the image's own size; the paper uses 256-512"),
    ("style.size=-5", "style.size=-5: must be at least 32 px, or null for the image's own size; the paper uses 256-512"),
    ("lr=0", "lr=0.0: the learning rate must be above 0 (the paper: 1e-3)"),
    ("lr=-1e-3", "lr=-0.001: the learning rate must be above 0 (the paper: 1e-3)"),
    ("style_lr=0", "style_lr=0.0: must be a learning rate > 0, or null (the same as lr)"),
    ("style_lr=-1e-2", "style_lr=-0.01: must be a learning rate > 0, or null (the same as lr)"),
    ("loss.style_weight=-1e10", "loss.style_weight=-10000000000.0: must be 0 (term off) or more"),
    ("loss.tv_weight=-1", "loss.tv_weight=-1.0: must be 0 (term off) or more"),
    ("loss.style_layers.relu2_2=-1", "loss.style_layers.relu2_2=-1.0: must be 0 or more"),
    ("loss.colour_weight=-1", "loss.colour_weight=-1.0: must be 0 (term off) or more"),
    ("loss.colour_weight=inf", "loss.colour_weight=inf: must be a finite number"),
    ("loss.content_weight=nan", "loss.content_weight=nan: must be a finite number"),
    ("loss.style_layers.relu2_2=inf", "loss.style_layers.relu2_2=inf: must be a finite number"),
    ("lr=inf", "lr=inf: must be a finite number"),
    ("style_lr=nan", "style_lr=nan: must be a finite number"),
    ("trainer.max_steps=0",
     "trainer.max_steps=0: must be at least 1 (the paper: 40000), or -1 to stop at trainer.max_epochs"),
    ("trainer.max_steps=-2",
     "trainer.max_steps=-2: must be at least 1 (the paper: 40000), or -1 to stop at trainer.max_epochs"),
])
def test_out_of_range_option_is_one_line_before_any_set_up(tmp_path, image_folder, style_file, override, message):
    # a missing style image would be the next error: the option is checked before it is read
    cfg = _cfg(tmp_path, image_folder, tmp_path / "not_read.png", override)
    with pytest.raises(FastStyleError) as error:
        train(cfg)
    assert str(error.value) == message
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_py_out_of_range_option_exits_2_with_one_line(tmp_path, image_folder, style_file):
    result = run_entry("train.py", *TINY_OVERRIDES, "style=custom", f"style.image={style_file}",
                       f"data.root={image_folder}", f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}",
                       "data.batch_size=0", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: data.batch_size=0: must be a whole number of at least 1 per device (the paper: 4)")
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ a huge style image


@pytest.fixture
def huge_style(tmp_path):
    """A 20000x12000 (240 MP) PNG of one colour: a few kB on disk, 2.9 GB as a float tensor."""
    path = tmp_path / "huge.png"
    Image.new("1", (20000, 12000), 1).save(path)
    return path


@pytest.mark.parametrize("size,message", [
    (None, "style image {path} is 20000x12000 px (240 MP); with style.size=null it must be at most 8 MP; "
           "set style.size=512 (the paper's 256-512; at most 3651 for this image)"),
    (5000, "style.size=5000 makes style image {path} 5000x3000 px (15 MP), more than 8 MP; "
           "set style.size=512 (the paper's 256-512; at most 3651 for this image)"),
])
def test_huge_style_image_is_refused_from_its_header(tmp_path, image_folder, huge_style, size, message):
    cfg = _cfg(tmp_path, image_folder, huge_style, f"style.size={'null' if size is None else size}")
    start = time.perf_counter()
    with pytest.raises(FastStyleError) as error:
        train(cfg)
    assert time.perf_counter() - start < 5  # decoding it alone would take longer, and 2.9 GB
    assert str(error.value) == message.format(path=huge_style)


def test_style_size_within_the_limit_loads_a_large_image(tmp_path, image_folder):
    from fast_style.training.train import load_style_tensor

    path = tmp_path / "wide.png"
    Image.new("RGB", (4000, 1000), (200, 30, 30)).save(path)
    assert load_style_tensor(path, size=512).shape == (1, 3, 128, 512)


# ------------------------------------------------------------------ data.root without photos


@pytest.mark.parametrize("make,message", [
    (lambda root: root.write_text("not an image"),
     "data.root={root}: a file that is not a readable image (cannot identify image file {quoted}); "
     "point data.root at a folder of photos"),
    (lambda root: (root.mkdir(), (root / "a.jpg").write_bytes(b""), (root / "b.png").write_bytes(b"")),
     "data.root={root}: 2 image-named file(s), none readable (extensions {extensions}); "
     "point data.root at a folder of photos"),
])
def test_data_root_without_a_readable_photo_is_one_line(tmp_path, style_file, make, message):
    root = tmp_path / "content"
    make(root)
    cfg = _cfg(tmp_path, root, style_file)
    with pytest.raises(FastStyleError) as error:
        train(cfg)
    expected = message.format(root=root, quoted=repr(str(root)), extensions=", ".join(IMAGE_EXTENSIONS))
    assert str(error.value) == expected
