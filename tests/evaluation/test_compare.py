"""The contact sheet of a sweep (scripts/compare.py): reading run folders, the sheet's files,
a real multirun end to end, and the page in a real headless Chromium."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import TINY_MODEL, TINY_OVERRIDES, random_photo, run_entry
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.evaluation.contact_sheet import compare_runs, label_width
from fast_style.evaluation.sweep_runs import find_runs, read_run

SIZE = 32


def options(runs, **values) -> SimpleNamespace:
    """The options scripts/compare.py passes (fast_style.config.CompareConfig's defaults)."""
    from fast_style.config import CompareConfig

    return SimpleNamespace(**{**vars(CompareConfig(runs=runs)), "size": SIZE, "progress": False, **values})


def tiny_net(seed: int):
    from fast_style.nn.transformer import TransformerNet

    torch.manual_seed(seed)
    return TransformerNet(**TINY_MODEL)


def make_run(folder: Path, *, photos: list[Path], painting: Path, weight: float = 1e10, value: float = 1.0,
             reference: float = 2.0, finished: bool = True, model: str | None = "tiny", seed: int = 0,
             ckpt_step: int | None = None) -> Path:
    """A run folder as train.py leaves it, written by hand: .hydra/, objective.json, the model
    (a tiny seeded TransformerNet; ``model="garbage"``: a file that is not one), finished.json,
    and with ``ckpt_step`` a Lightning checkpoints/last.ckpt of that step."""
    from fast_style.io.metadata import StyleModelMetadata
    from fast_style.io.model_files import save_style_model

    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(f"- model=tiny\n- loss.style_weight={weight}\n")
    (folder / ".hydra" / "config.yaml").write_text(f"style:\n  name: tiny\n  image: {painting}\n")
    weights = {"content_weight": 1e5, "style_weight": weight, "tv_weight": 1e4}
    objective = {"kind": "heldout", "value": value, "weights": weights, "photos": [str(p) for p in photos],
                 "size": SIZE, "reference": {"total": reference}}
    (folder / "objective.json").write_text(json.dumps(objective))
    if ckpt_step is not None:
        (folder / "checkpoints").mkdir()
        state = {f"transformer.{k}": v for k, v in tiny_net(seed).state_dict().items()}
        torch.save({"state_dict": state, "global_step": ckpt_step,
                    "hyper_parameters": {"model": TINY_MODEL, "style": {"name": "tiny"}}},
                   folder / "checkpoints" / "last.ckpt")
    if model == "garbage":
        (folder / "tiny.safetensors").write_bytes(b"this is not a model at all")
    elif model:
        save_style_model(tiny_net(seed), folder / f"{model}.safetensors", metadata=StyleModelMetadata(style_name="tiny"))
    if finished:
        record = {"output_dir": str(folder), "global_step": 5, "steps_per_s": 2.5,
                  "style_model": str(folder.parent / "elsewhere" / "tiny.safetensors")}
        (folder / "finished.json").write_text(json.dumps(record))
    return folder


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    (tmp_path / "photos").mkdir()
    paths = [tmp_path / "photos" / f"p{i}.png" for i in range(3)]
    for i, path in enumerate(paths):
        random_photo(40 + i, 36, seed=i).save(path)
    return paths


@pytest.fixture
def painting(tmp_path) -> Path:
    path = tmp_path / "painting.png"
    random_photo(50, 40, seed=99).save(path)
    return path


def test_a_finished_run_reads_as_ok_with_its_numbers_and_its_own_model(tmp_path, photos, painting):
    run = read_run(make_run(tmp_path / "sweep" / "0_tiny", photos=photos, painting=painting, value=3.5, reference=7.0))
    assert run.status == "ok" and run.reason == ""
    assert run.overrides == ["model=tiny", "loss.style_weight=10000000000.0"]
    assert (run.objective, run.reference, run.steps, run.steps_per_s) == (3.5, 7.0, 5, 2.5)
    # the run folder's own copy, not finished.json's shared checkpoints/ file (which is gone here)
    assert run.model == tmp_path / "sweep" / "0_tiny" / "tiny.safetensors"
    assert run.photos == photos and run.missing_photos == [] and run.paintings == [painting]
    assert run.seconds is not None and run.seconds >= 0


def test_finished_json_s_recorded_wall_time_and_paintings_are_used_before_any_inference(tmp_path, photos, painting):
    """train.py records ``seconds`` and ``paintings`` in finished.json: they win over file times
    and the config's style.image; a recorded time that is not a finite non-negative number is
    not trusted (the file times are used)."""
    other = tmp_path / "other_painting.png"
    random_photo(30, 30, seed=7).save(other)
    folder = make_run(tmp_path / "sweep" / "0_tiny", photos=photos, painting=painting)
    record = json.loads((folder / "finished.json").read_text())
    (folder / "finished.json").write_text(json.dumps({**record, "seconds": 812.25, "paintings": [str(other)]}))
    run = read_run(folder)
    assert run.seconds == 812.25 and run.paintings == [other]
    for bad in ("NaN", -3, "soon"):
        (folder / "finished.json").write_text(json.dumps({**record, "seconds": bad}))
        run = read_run(folder)
        assert run.seconds is not None and 0 <= run.seconds < 60 and run.paintings == [painting]


def test_a_run_still_training_is_shown_from_its_last_checkpoint(tmp_path, photos, painting):
    run = read_run(make_run(tmp_path / "1_tiny", photos=photos, painting=painting, finished=False, model=None,
                            ckpt_step=7))
    assert run.status == "training" and run.model == tmp_path / "1_tiny" / "checkpoints" / "last.ckpt"
    assert "still training" in run.reason


def test_failed_and_foreign_folders_are_rows_with_the_reason(tmp_path, photos, painting):
    failed = tmp_path / "2_tiny"
    (failed / ".hydra").mkdir(parents=True)
    (failed / "train.log").write_text("[2026-12-07 07:00:00,000][fast_style][ERROR] - error: data.root=/x: no photos\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    rows = {p.name: read_run(p) for p in (failed, empty, tmp_path / "absent")}
    assert all(r.status == "failed" and r.model is None for r in rows.values())
    assert rows["2_tiny"].reason.startswith("no model") and "data.root=/x: no photos" in rows["2_tiny"].reason
    assert rows["empty"].reason.startswith("not a run folder")
    assert rows["absent"].reason == "no such folder"


def test_bare_photo_names_are_found_under_the_runs_data_root(tmp_path, photos, painting):
    folder = make_run(tmp_path / "0_tiny", photos=[Path(p.name) for p in photos[:2]], painting=painting)
    (folder / ".hydra" / "config.yaml").write_text(f"style:\n  image: {painting}\ndata:\n  root: {photos[0].parent}\n")
    (folder / "objective.json").write_text(json.dumps({"value": 1.0, "photos": ["p0.png", "p1.png", "gone.png"]}))
    run = read_run(folder)
    assert run.photos == photos[:2] and run.missing_photos == ["gone.png"]


def test_find_runs_orders_a_sweep_by_job_number_and_refuses_an_empty_glob(tmp_path, photos, painting):
    sweep = tmp_path / "sweep"
    for name in ("10_tiny", "2_tiny", "0_tiny"):
        make_run(sweep / name, photos=photos, painting=painting)
    (sweep / "compare").mkdir()  # an earlier sheet: not a run
    (sweep / "3_tiny").mkdir()   # a job folder with nothing in it: listed, to say so
    folders, found_sweep = find_runs(str(sweep))
    assert [f.name for f in folders] == ["0_tiny", "2_tiny", "3_tiny", "10_tiny"] and found_sweep == sweep
    assert [f.name for f in find_runs(str(sweep / "1*"))[0]] == ["10_tiny"]
    with pytest.raises(FastStyleError, match="the glob matches nothing"):
        find_runs(str(tmp_path / "nowhere" / "*"))


def test_the_sheet_has_every_run_a_row_the_jpeg_its_geometry_and_failures_their_reason(tmp_path, photos, painting):
    sweep = tmp_path / "sweep"
    make_run(sweep / "0_tiny", photos=photos, painting=painting, weight=1e9, value=1.0, reference=30.0, seed=0)
    make_run(sweep / "1_tiny", photos=photos, painting=painting, weight=1e10, value=5.0, reference=10.0, seed=1)
    make_run(sweep / "2_tiny", photos=photos, painting=painting, weight=1e11, model="garbage")
    make_run(sweep / "3_tiny", photos=photos, painting=painting, weight=1e12, finished=False, model=None, ckpt_step=7,
             reference=20.0, seed=2)
    sheet = compare_runs(options(str(sweep)))
    assert sheet.folder == sweep / "compare"
    # loss weights differ: sorted by the reference total, the failed run last
    assert [r.run.name for r in sheet.rows] == ["1_tiny", "3_tiny", "0_tiny", "2_tiny"] and sheet.sort == "reference"
    broken = sheet.rows[-1].run
    assert broken.status == "failed" and str(sweep / "2_tiny" / "tiny.safetensors") in broken.reason
    assert sheet.rows[1].run.status == "training" and sheet.rows[1].run.steps == 7  # from its checkpoint
    assert [r.run.label for r in sheet.rows] == [f"loss.style_weight={w}" for w in ("1e+10", "1e+12", "1e+09", "1e+11")]
    with Image.open(sheet.folder / "compare.jpg") as jpeg:
        assert jpeg.size == (label_width(SIZE) + (len(photos) + 1) * SIZE, (4 + 1) * SIZE)
        # the first run's first tile is its stylized first photo
        tile = jpeg.crop((label_width(SIZE), SIZE, label_width(SIZE) + SIZE, 2 * SIZE))
        with Image.open(sheet.folder / "thumbs" / "r001_p00.jpg") as thumb:
            assert thumb.size == (SIZE, SIZE)
            difference = np.asarray(tile, dtype=np.float32) - np.asarray(thumb, dtype=np.float32)
            assert np.abs(difference).mean() < 6  # two JPEG encodings of the same pixels
    page = (sheet.folder / "compare.html").read_text()
    assert page.count('<tr class="') == 4 and page.count("<img ") == len(photos) + 3 * (len(photos) + 1)
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert 'href="../0_tiny/tiny.safetensors"' in page and links and not [a for a in links if a.startswith("/")]
    record = json.loads((sheet.folder / "compare.json").read_text())
    assert [r["status"] for r in record["runs"]] == ["ok", "training", "ok", "failed"]


def test_an_objective_photo_that_is_not_an_image_skips_its_column_with_one_warning(tmp_path, photos, painting, capsys):
    bad = photos[0].parent / "notes.jpg"
    bad.write_text("not a picture")
    make_run(tmp_path / "sweep" / "0_tiny", photos=[photos[0], bad, photos[1]], painting=painting)
    sheet = compare_runs(options(str(tmp_path / "sweep")))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "notes.jpg" in warnings[0] and "column is skipped" in warnings[0]
    assert sheet.photos == photos[:2] and len(sheet.rows[0].images) == 2


def test_an_existing_sheet_is_kept_unless_overwrite(tmp_path, photos, painting):
    make_run(tmp_path / "sweep" / "0_tiny", photos=photos[:1], painting=painting)
    first = compare_runs(options(str(tmp_path / "sweep")))
    second = compare_runs(options(str(tmp_path / "sweep")))
    assert (first.folder.name, second.folder.name) == ("compare", "compare-1")
    with pytest.raises(FastStyleError, match="overwrite=true"):
        compare_runs(options(str(tmp_path / "sweep"), output=str(first.folder)))
    before = (first.folder / "compare.html").stat().st_mtime_ns
    compare_runs(options(str(tmp_path / "sweep"), output=str(first.folder), overwrite=True))
    assert (first.folder / "compare.html").stat().st_mtime_ns != before


# ----------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    """Three tiny real runs of one `train.py -m` (style weights 1e8, 1e10, 1e12; basic
    launcher), a broken job folder beside them, and scripts/compare.py run on the sweep."""
    root = tmp_path_factory.mktemp("compare_sweep")
    (root / "photos").mkdir()
    for i in range(4):
        random_photo(48 + 3 * i, 40 + 5 * i, seed=i).save(root / "photos" / f"photo_{i}.png")
    random_photo(64, 48, seed=123).save(root / "painting.png")
    sweep = root / "sweep"
    start = time.perf_counter()
    train = run_entry("train.py", "-m", *TINY_OVERRIDES, "style=custom", "style.name=tiny",
                      f"style.image={root / 'painting.png'}", f"data.root={root / 'photos'}", f"paths.root_dir={root}",
                      "trainer.max_steps=3", "callbacks.style_samples.every_n_steps=0",
                      "loss.style_weight=1e8,1e10,1e12", "hydra/launcher=basic", f"hydra.sweep.dir={sweep}",
                      cwd=root, timeout=300)
    assert train.returncode == 0, train.stderr[-3000:]
    (sweep / "3_broken" / ".hydra").mkdir(parents=True)  # a job that died before its first checkpoint
    compare = run_entry("scripts/compare.py", f"runs={sweep}", f"size={SIZE}", cwd=root, timeout=120)
    return SimpleNamespace(root=root, sweep=sweep, compare=compare, seconds=time.perf_counter() - start)


@pytest.mark.slow
@pytest.mark.heavy
def test_compare_on_a_real_sweep_writes_a_jpeg_of_rows_by_columns_tiles(real_sweep):
    compare = real_sweep.compare
    assert compare.returncode == 0, compare.stderr[-3000:]
    assert "4 runs (3 ok, 0 training, 1 failed) x 2 photos" in compare.stdout
    folder = real_sweep.sweep / "compare"
    record = json.loads((folder / "compare.json").read_text())
    # the photos every run measured its objective on (data samples: bare names found under data.root)
    assert [Path(p).name for p in record["photos"]] == ["photo_0.png", "photo_2.png"]
    runs = {r["label"]: r for r in record["runs"]}
    for weight in ("1e+08", "1e+10", "1e+12"):
        run = runs[f"loss.style_weight={weight}"]
        objective = json.loads((Path(run["folder"]) / "objective.json").read_text())
        assert run["status"] == "ok" and run["objective"] == objective["value"] and run["steps"] == 3
        assert set(run["losses"]) == {"content", "style", "tv", "total"} and run["seconds"] > 0
    assert [r["status"] for r in record["runs"]][-1] == "failed"
    with Image.open(folder / "compare.jpg") as jpeg:
        assert jpeg.size == (label_width(SIZE) + (2 + 1) * SIZE, (4 + 1) * SIZE)


@pytest.mark.slow
def test_a_glob_that_matches_nothing_is_one_line_and_exit_2(tmp_path):
    run = run_entry("scripts/compare.py", f"runs={tmp_path}/nothing*", cwd=tmp_path, timeout=60)
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0
    assert run.stderr.startswith("error: runs=") and "matches nothing" in run.stderr


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.browser
def test_the_page_shows_every_row_and_image_and_sorts_by_a_clicked_header(real_sweep, chromium_page, tmp_path):
    assert real_sweep.compare.returncode == 0, real_sweep.compare.stderr[-3000:]
    page = chromium_page
    page.goto((real_sweep.sweep / "compare" / "compare.html").as_uri())
    page.wait_for_load_state("load")
    assert page.locator("tbody tr").count() == 4
    images = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth)")
    # 2 photos in the header; 3 ok rows x (2 photos + the painting)
    assert len(images) == 2 + 3 * 3 and all(width == SIZE for width in images), images

    def column(header: str) -> list[float | None]:
        index = page.locator("thead th").all_inner_texts().index(header)
        values = page.eval_on_selector_all(
            "tbody tr", f"rows => rows.map(r => r.cells[{index}] && r.cells[{index}].dataset.v)")
        return [float(v) if v not in (None, "") else None for v in values]

    page.locator("thead th", has_text="objective").first.click()
    objective = column("objective")
    known = [v for v in objective if v is not None]
    assert len(known) == 3 and known == sorted(known) and objective[-1] is None  # the failed row last
    page.locator("thead th", has_text="objective").first.click()
    descending = [v for v in column("objective") if v is not None]
    assert descending == sorted(known, reverse=True)
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    assert (tmp_path / "compare.png").stat().st_size > 0
