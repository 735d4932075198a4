"""The contact sheet of a sweep: every run's model on the same photos, side by side.

``python scripts/compare.py runs=<sweep folder | list | glob>`` (:func:`compare_runs`) reads
each run (:mod:`.sweep_runs`), opens each model once, stylizes the same photos with it (one
process; the photos decoded once as centre squares of ``size`` px, (3, S, S) in [0, 1];
``fast_style.stylize_images``) and writes into a folder of its own:

- ``thumbs/``: ``photo_JJ.jpg`` (the photos), ``painting_KK.jpg`` (each painting, centre
  square), ``rIII_pJJ.jpg`` (run III's output on photo JJ; III: the run's place in the
  order the runs were named), every tile ``size`` x ``size`` px, JPEG ``quality``;
- ``compare.html``: one row per run (its overrides that differ between runs as the label,
  all of them in the tooltip; status; objective; reference total; final content, style,
  tv and total training losses; steps; wall time; a link to the model file), one column
  per photo plus the painting; clicking a metric's header sorts the rows by it (again:
  the other way); relative links only, so the folder can be moved or served as it is;
- ``compare.jpg``: the same grid as one picture. Geometry, with R runs, P photos, tile
  side S and label strip L = :func:`label_width` (S) = max(240, 2 S): width L + (P + 1) S,
  height (R + 1) S; row 0 holds the photos (its painting tile left white), row r the
  r-th run in the sheet's order; column 0..P-1 the photos, column P the run's painting;
  a failed run's tiles are grey and its strip says why;
- ``compare.json``: the sheet's runs (their :class:`~.sweep_runs.RunSummary`), photos and order.

The photos: ``photos=`` (a folder, searched recursively, a file or a list), else the
``objective.json`` photos of the first finished run that has them (all runs of a sweep
measure the same ones; when they differ a note says whose were used). A photo that cannot
be read or found is skipped with one warning line, the rest written. A multi-style model is
shown in its first style.

Rows are sorted by ``sort``: ``auto`` is ``reference`` (the total under one fixed weighting,
comparable across a sweep of loss weights) when the runs' loss weights differ, else
``objective``; failed rows last. Every file is written atomically; an existing
``compare.html`` is replaced only with ``overwrite``.
"""

from __future__ import annotations

import html
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from fast_style.errors import FastStyleError, first_line
from fast_style.evaluation.sweep_runs import RunSummary, differing_overrides, find_runs, read_run
from fast_style.io.files import atomic_write_text, unique_path
from fast_style.io.images import images_below, open_rgb, save_image, square_image, tensor_to_pil
from fast_style.progress import progress

SORT_KEYS = ("objective", "reference", "content", "style", "tv", "total", "steps", "time", "run")
THUMBS = "thumbs"
HTML_FILE, JPEG_FILE, JSON_FILE = "compare.html", "compare.jpg", "compare.json"
MIN_SIZE, MAX_SIZE = 16, 2048
FAILED_GREY = (200, 200, 200)


def label_width(size: int) -> int:
    """The width of compare.jpg's label strip for tiles of ``size`` px: max(240, 2 size)."""
    return max(240, 2 * size)


@dataclass
class Row:
    """One run on the sheet: its summary, its place in the order named (``index``) and its
    stylized photos ((3, S, S) each, None where not made)."""

    index: int
    run: RunSummary
    images: list[torch.Tensor | None] = field(default_factory=list)


@dataclass
class Sheet:
    """What :func:`compare_runs` wrote."""

    folder: Path
    rows: list[Row]
    photos: list[Path]
    sort: str
    jpeg_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        counts = {s: sum(r.run.status == s for r in self.rows) for s in ("ok", "training", "failed")}
        width, height = self.jpeg_size
        return (f"contact sheet: {len(self.rows)} runs ({counts['ok']} ok, {counts['training']} training, "
                f"{counts['failed']} failed) x {len(self.photos)} photos, sorted by {self.sort} -> "
                f"{self.folder / HTML_FILE}, {self.folder / JPEG_FILE} ({width}x{height})")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def check_options(options) -> None:
    """One line for an option out of range."""
    if not MIN_SIZE <= int(options.size) <= MAX_SIZE:
        raise FastStyleError(f"size={options.size}: tiles of {MIN_SIZE} to {MAX_SIZE} px, e.g. size=256")
    if str(options.sort) not in ("auto", *SORT_KEYS):
        raise FastStyleError(f"sort={options.sort}: choose auto or one of {', '.join(SORT_KEYS)}")
    if not 1 <= int(options.quality) <= 100:
        raise FastStyleError(f"quality={options.quality}: a JPEG quality of 1 to 100, e.g. 90")


def output_folder(output: str | None, *, sweep: Path | None, overwrite: bool) -> Path:
    """Where the sheet goes (module docstring and :class:`fast_style.config.CompareConfig`)."""
    if output:
        folder = Path(output).expanduser()
        if (folder / HTML_FILE).exists() and not overwrite:
            raise FastStyleError(f"{folder / HTML_FILE} exists; pass overwrite=true to replace it, or another output=")
        return folder
    if sweep is not None:
        folder = sweep / "compare"
        return folder if overwrite or not (folder / HTML_FILE).exists() else unique_path(folder)
    return unique_path(Path.cwd() / f"compare-{time.strftime('%Y%m%d-%H%M%S')}")


def photo_files(photos: Any) -> list[Path]:
    """The files ``photos=`` names: folders (recursively, sorted), files, in order; one line
    for a path that does not exist or a folder without images."""
    entries = [photos] if isinstance(photos, str | os.PathLike) else list(photos)
    files: list[Path] = []
    for entry in map(lambda e: Path(str(e)).expanduser(), entries):
        if entry.is_dir():
            found = images_below(entry)
            if not found:
                raise FastStyleError(f"photos={entry}: holds no images; name a folder of jpg/png photos or a list")
            files += found
        elif entry.is_file():
            files.append(entry)
        else:
            raise FastStyleError(f"photos={entry}: no such file or folder; give a folder of photos or a list of files")
    return list(dict.fromkeys(files))


def choose_photos(options, runs: list[RunSummary]) -> tuple[list[Path], list[str]]:
    """(the photos, notes): ``photos=``, else the first finished (then training) run's
    objective photos; a note when other runs name other photos or when photos are missing."""
    if options.photos is not None:
        return photo_files(options.photos), []
    notes = []
    measured = [r for r in runs if r.photos or r.missing_photos]
    measured.sort(key=lambda r: r.status != "ok")
    if not measured:
        return [], ["no run has an objective.json with photos: pass photos=<folder or list> to show some"]
    first = measured[0]
    for name in first.missing_photos:
        notes.append(f"{first.folder}/objective.json names photo {name}, which was not found; column skipped "
                     "(pass photos=<folder or list>)")
    names = [p.name for p in first.photos] + first.missing_photos
    others = [r for r in measured[1:] if [p.name for p in r.photos] + r.missing_photos != names]
    if others:
        notes.append(f"{len(others)} run(s) measured other objective photos (e.g. {others[0].folder}); showing "
                     f"{first.folder}'s {len(names)}; pass photos= to choose")
    return first.photos, notes


def decode_photos(files: list[Path], size: int) -> tuple[list[Path], list[torch.Tensor]]:
    """Each file as its centre square of ``size`` px, decoded once; one warning per file
    that is not a readable image (its column skipped)."""
    kept, images = [], []
    for path in files:
        try:
            images.append(square_image(path, size))
        except (FastStyleError, OSError, ValueError) as exc:
            warn(f"photo {first_line(exc)}; its column is skipped")
            continue
        kept.append(path)
    return kept, images


def painting_tile(path: Path, size: int) -> Image.Image | None:
    """The painting's centre square of ``size`` px, or None (with a warning) if unreadable."""
    try:
        return ImageOps.fit(open_rgb(path, draft_size=(size, size)), (size, size), method=Image.Resampling.LANCZOS)
    except (FastStyleError, OSError, ValueError) as exc:
        warn(f"painting {first_line(exc)}; not shown")
        return None


def stylize_run(row: Row, photos: list[torch.Tensor], options) -> None:
    """Open the row's model once and stylize ``photos`` with it; a model that cannot be opened
    or run makes the row failed with the reason."""
    from fast_style.inference.api import stylize_images
    from fast_style.io.model_files import open_model

    run = row.run
    row.images = [None] * len(photos)
    if run.model is None:
        return
    try:
        model = open_model(run.model, device=str(options.device) if options.device != "auto" else "cpu")
        if run.steps is None and model.metadata.steps is not None:
            run.steps = int(model.metadata.steps)
        extra = {"style": 0} if model.num_styles > 1 else {}
        if extra:
            run.reason = (run.reason + "; " if run.reason else "") + f"a {model.num_styles}-style model: its first style shown"
        if photos:
            outputs = stylize_images(model, photos, device=options.device, runtime=options.runtime,
                                     precision=options.precision, progress=False, **extra)
            row.images = [image.detach().float().cpu() for image in outputs]
    except Exception as exc:  # noqa: BLE001 - any model that fails is a row with the reason, never the command
        run.status, run.reason = "failed", f"{run.model}: {first_line(exc).removeprefix(f'{run.model}: ')}"
        row.images = [None] * len(photos)
    finally:
        model = None  # noqa: F841 - each model is let go before the next one is opened


def metric(run: RunSummary, key: str) -> float | None:
    """The value a sort key reads from ``run`` (None when unknown)."""
    if key in ("content", "style", "tv", "total"):
        return run.losses.get(key)
    return {"objective": run.objective, "reference": run.reference, "steps": run.steps,
            "time": run.seconds}.get(key)


def auto_sort(runs: list[RunSummary]) -> str:
    """``reference`` when the runs' loss weights differ (and they have a reference), else ``objective``."""
    weights = {json.dumps(r.weights, sort_keys=True) for r in runs if r.weights is not None}
    if len(weights) > 1 and any(r.reference is not None for r in runs):
        return "reference"
    return "objective"


def sort_rows(rows: list[Row], key: str) -> list[Row]:
    """Rows by ``key`` ascending (unknown values after known ones), failed rows last;
    ``run``: the order named."""
    def order(row: Row) -> tuple:
        value = None if key == "run" else metric(row.run, key)
        return (row.run.status == "failed", value is None, value if value is not None else 0.0, row.index)

    return sorted(rows, key=order)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType's default font
        return ImageFont.load_default()


def _wrap(text: str, chars: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        while len(word) > chars:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:chars])
            word = word[chars:]
        if len(line) + len(word) + (1 if line else 0) > chars:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.4g}"


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f} s" if value < 600 else f"{value / 60:.1f} min"


def _strip_text(row: Row) -> str:
    run = row.run
    parts = [f"#{row.index} {run.label}"]
    if run.status != "failed":
        parts.append(f"objective {_number(run.objective) or '-'}  reference {_number(run.reference) or '-'}  "
                     f"steps {run.steps if run.steps is not None else '-'}")
    if run.status != "ok":
        parts.append(f"{run.status}: {run.reason}")
    return "\n".join(parts)


def draw_jpeg(rows: list[Row], photos: list[torch.Tensor], paintings: dict[Path, Image.Image | None],
              size: int) -> Image.Image:
    """compare.jpg's picture (geometry: module docstring)."""
    strip, columns = label_width(size), len(photos) + 1
    sheet = Image.new("RGB", (strip + columns * size, (len(rows) + 1) * size), "white")
    draw = ImageDraw.Draw(sheet)
    font_px = max(9, min(16, size // 12))
    font, chars = _font(font_px), max(8, int(strip / (font_px * 0.6)) - 1)
    lines_fit = max(1, size // (font_px + 3))
    draw.text((6, 6), "photos", fill="black", font=font)
    for j, photo in enumerate(photos):
        sheet.paste(tensor_to_pil(photo), (strip + j * size, 0))
    for r, row in enumerate(rows, start=1):
        top = r * size
        lines = [w for part in _strip_text(row).split("\n") for w in _wrap(part, chars)][:lines_fit]
        for k, text in enumerate(lines):
            draw.text((6, top + 4 + k * (font_px + 3)), text, fill="black" if row.run.status == "ok" else "firebrick",
                      font=font)
        for j in range(len(photos)):
            image = row.images[j] if j < len(row.images) else None
            if image is None:
                draw.rectangle([strip + j * size, top, strip + (j + 1) * size - 1, top + size - 1], fill=FAILED_GREY)
            else:
                sheet.paste(tensor_to_pil(image), (strip + j * size, top))
        painting = paintings.get(row.run.paintings[0]) if row.run.paintings else None
        if painting is not None:
            sheet.paste(painting, (strip + len(photos) * size, top))
    return sheet


STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; vertical-align: middle; }
th { background: #f3f3f3; position: sticky; top: 0; }
th.sort { cursor: pointer; user-select: none; }
th.sort[data-dir=asc]::after { content: " \\25B2"; }
th.sort[data-dir=desc]::after { content: " \\25BC"; }
td.label { text-align: left; max-width: 22em; font-family: ui-monospace, monospace; font-size: 12px; }
td.img, th.img { padding: 0; text-align: center; }
td.img img, th.img img { display: block; }
tr.failed td { color: #a11; }
tr.training td.label::after { content: " (training)"; color: #a60; }
td.reason { text-align: left; max-width: 40em; }
"""

SCRIPT = """
document.querySelectorAll('th.sort').forEach(function (th) {
  th.addEventListener('click', function () {
    var body = document.querySelector('tbody'), col = th.cellIndex;
    var asc = th.dataset.dir !== 'asc';
    document.querySelectorAll('th.sort').forEach(function (h) { delete h.dataset.dir; });
    th.dataset.dir = asc ? 'asc' : 'desc';
    var value = function (row) {
      var cell = row.cells[col], v = cell ? parseFloat(cell.dataset.v) : NaN;
      return isNaN(v) ? null : v;
    };
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a), y = value(b);
      if (x === null || y === null) { return (x === null) - (y === null) || a.dataset.i - b.dataset.i; }
      return (asc ? x - y : y - x) || a.dataset.i - b.dataset.i;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

# (header, sort key, the run's value): the sheet's metric columns, in order
METRICS = (("objective", "objective"), ("reference total", "reference"), ("content", "content"),
           ("style", "style"), ("tv", "tv"), ("total", "total"), ("steps", "steps"), ("time", "time"))


def _cell(value: float | None, text: str) -> str:
    data = f' data-v="{value!r}"' if value is not None and math.isfinite(value) else ""
    return f"<td{data}>{html.escape(text)}</td>"


def render_html(rows: list[Row], *, photos: list[Path], thumbs: dict[str, str], folder: Path,
                size: int, sort: str, notes: list[str]) -> str:
    """compare.html (module docstring); ``thumbs``: relative file names of the tiles by key."""
    e = html.escape
    head = ['<th class="sort" data-key="run"' + (' data-dir="asc"' if sort == "run" else "") + '>#</th>',
            "<th>run</th>"]
    for title, key in METRICS:
        head.append(f'<th class="sort" data-key="{key}"' + (' data-dir="asc"' if key == sort else "") + f">{e(title)}</th>")
    head.append("<th>model</th>")
    for j, path in enumerate(photos):
        head.append(f'<th class="img"><img src="{e(thumbs[f"photo{j}"])}" width="{size}" height="{size}" '
                    f'alt="{e(path.name)}" title="{e(str(path))}"><br>{e(path.name)}</th>')
    head.append("<th>painting</th>")
    body = []
    for row in rows:
        run = row.run
        tooltip = e("\n".join([str(run.folder), *run.overrides, *([run.reason] if run.reason else [])]))
        cells = [f'<td data-v="{row.index}">{row.index}</td>', f'<td class="label" title="{tooltip}">{e(run.label)}</td>']
        for _, key in METRICS:
            value = metric(run, key)
            text = _seconds(value) if key == "time" else str(value) if key == "steps" and value is not None else _number(value)
            cells.append(_cell(None if value is None else float(value), text))
        if run.model is not None and run.model.exists():
            link = os.path.relpath(run.model, folder)
            cells.append(f'<td><a href="{e(Path(link).as_posix())}">{e(run.model.name)}</a></td>')
        else:
            cells.append("<td></td>")
        if run.status == "failed":
            cells.append(f'<td class="reason" colspan="{len(photos) + 1}">{e(run.reason)}</td>')
        else:
            for j in range(len(photos)):
                key = f"r{row.index}p{j}"
                cells.append(f'<td class="img"><img src="{e(thumbs[key])}" width="{size}" height="{size}" alt="{j}"></td>'
                             if key in thumbs else "<td></td>")
            painting = thumbs.get(f"painting:{run.paintings[0]}") if run.paintings else None
            cells.append(f'<td class="img"><img src="{e(painting)}" width="{size}" height="{size}" '
                         f'alt="painting" title="{e(str(run.paintings[0]))}"></td>' if painting else "<td></td>")
        body.append(f'<tr class="{run.status}" data-i="{row.index}">' + "".join(cells) + "</tr>")
    counts = {s: sum(r.run.status == s for r in rows) for s in ("ok", "training", "failed")}
    intro = (f"{len(rows)} runs ({counts['ok']} ok, {counts['training']} training, {counts['failed']} failed) "
             f"x {len(photos)} photos; sorted by {sort}; click a column's header to sort by it. "
             "objective: the value train.py returned; reference total: the held-out total under one fixed "
             "weighting, comparable across a sweep of loss weights; content, style, tv, total: the last "
             "training losses.")
    note_html = "".join(f"<p class=note>{e(n)}</p>" for n in notes)
    return ("<!doctype html>\n<html><head><meta charset=utf-8><title>contact sheet</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>Contact sheet</h1>\n<p>{e(intro)}</p>{note_html}\n"
            f"<table><thead><tr>{''.join(head)}</tr></thead>\n<tbody>\n" + "\n".join(body) +
            f"\n</tbody></table>\n<script>{SCRIPT}</script>\n</body></html>\n")


def compare_runs(options) -> Sheet:
    """``python scripts/compare.py`` (module docstring); ``options``: a
    :class:`fast_style.config.CompareConfig`."""
    check_options(options)
    size, quality = int(options.size), int(options.quality)
    folders, sweep = find_runs(options.runs)
    runs = [read_run(folder) for folder in folders]
    differing_overrides(runs)
    files, notes = choose_photos(options, runs)
    for note in notes:
        warn(note)
    folder = output_folder(options.output, sweep=sweep, overwrite=bool(options.overwrite))
    paths, photos = decode_photos(files, size)

    rows = [Row(index=i, run=run) for i, run in enumerate(runs)]
    with progress(len(rows) * len(photos) or None, label="contact sheet", unit="images",
                  enabled=bool(options.progress)) as advance:
        for row in rows:
            stylize_run(row, photos, options)
            advance(len(photos))
    sort = auto_sort(runs) if options.sort == "auto" else str(options.sort)
    rows = sort_rows(rows, sort)

    (folder / THUMBS).mkdir(parents=True, exist_ok=True)
    thumbs: dict[str, str] = {}

    def thumb(key: str, name: str, image) -> None:
        save_image(image, folder / THUMBS / name, quality=quality)
        thumbs[key] = f"{THUMBS}/{name}"

    for j, photo in enumerate(photos):
        thumb(f"photo{j}", f"photo_{j:02d}.jpg", photo)
    paintings: dict[Path, Image.Image | None] = {}
    for row in rows:
        for path in row.run.paintings[:1]:
            if path not in paintings:
                paintings[path] = painting_tile(path, size)
                if paintings[path] is not None:
                    thumb(f"painting:{path}", f"painting_{len(paintings) - 1:02d}.jpg", paintings[path])
        for j, image in enumerate(row.images):
            if image is not None:
                thumb(f"r{row.index}p{j}", f"r{row.index:03d}_p{j:02d}.jpg", image)
    picture = draw_jpeg(rows, photos, paintings, size)
    save_image(picture, folder / JPEG_FILE, quality=quality)
    record = {"photos": [str(p) for p in paths], "size": size, "sort": sort, "label_width": label_width(size),
              "runs": [{**row.run.as_json(), "index": row.index} for row in rows]}
    atomic_write_text(folder / JSON_FILE, json.dumps(record, indent=2))
    atomic_write_text(folder / HTML_FILE, render_html(rows, photos=paths, thumbs=thumbs, folder=folder.resolve(),
                                                      size=size, sort=sort, notes=notes))
    return Sheet(folder=folder, rows=rows, photos=paths, sort=sort, jpeg_size=picture.size, notes=notes)

