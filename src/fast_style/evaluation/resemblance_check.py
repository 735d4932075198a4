"""Does a style model show style transfer on photos it was not trained on?

For each photo x (centre square at ``size`` px) and the model's output y = T(x),
clamped to [0, 1], against the style image P (centre square at ``size`` px):

- the photo is kept when ``luminance_ssim(x, y) >= min_ssim`` (default 0.5);
- the painting's colours are taken when ``colour_distance(y, P) <= max_colour_ratio *
  colour_distance(x, P)`` (default 0.6: the stylized image is at least 40% closer to the
  painting's palette than the photo was).

Both numbers are defined in :mod:`fast_style.evaluation.resemblance`. The check writes
each stylized photo, ``grid.png`` (rows: photos; columns: photo | stylized | painting)
and ``resemblance.json`` into ``output_dir``, and prints a table. It reports; it does not
fail a run, since what a model can reach depends on its loss network and steps.
A multi-style model is checked with the style weights given (``style_weights`` (S,),
e.g. one-hot for one of its styles: the painting is that style's).

    python train.py experiment=demo     # ends with this check on two held-out photos
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from fast_style.errors import FastStyleError
from fast_style.evaluation.evaluate import make_grid
from fast_style.evaluation.resemblance import colour_distance, luminance_ssim
from fast_style.inference.mixing import mix_label, style_names
from fast_style.io.files import atomic_write_text
from fast_style.io.images import images_below, save_image, square_image
from fast_style.io.model_files import StyleModel, open_model

SSIM_WINDOW = 11
MIN_SSIM = 0.5
MAX_COLOUR_RATIO = 0.6


@dataclass(frozen=True)
class Resemblance:
    """One photo's numbers (see the module docstring)."""

    photo: str
    ssim: float
    photo_colour: float
    stylized_colour: float
    stylized: str

    @property
    def colour_ratio(self) -> float:
        return self.stylized_colour / self.photo_colour if self.photo_colour > 0 else float("inf")

    def keeps_photo(self, min_ssim: float = MIN_SSIM) -> bool:
        return self.ssim >= min_ssim

    def takes_palette(self, max_ratio: float = MAX_COLOUR_RATIO) -> bool:
        return self.colour_ratio <= max_ratio


def measure(network: torch.nn.Module, photo: torch.Tensor, painting: torch.Tensor,
            style: torch.Tensor | None = None) -> tuple[torch.Tensor, float, float, float]:
    """(stylized (3, H, W), SSIM to the photo, photo's and stylized colour distance to the
    painting); ``style``: the style weights (S,) of a multi-style network."""
    with torch.inference_mode():
        stylized = network(photo[None], style)[0].clamp(0, 1)
    return stylized, luminance_ssim(photo, stylized), colour_distance(photo, painting), colour_distance(stylized, painting)


def check_resemblance(
    *,
    model_path: str | Path,
    images: str | Path,
    style_image: str | Path,
    output_dir: str | Path,
    size: int = 256,
    min_ssim: float = MIN_SSIM,
    max_colour_ratio: float = MAX_COLOUR_RATIO,
    style_weights: torch.Tensor | None = None,
) -> list[Resemblance]:
    """Measure every photo in ``images`` (a folder or one file); write and print the results.
    ``style_weights`` (S,): which style of a multi-style model (needed there; one-hot for one style)."""
    if size < SSIM_WINDOW:
        raise FastStyleError(f"check.size={size}: the SSIM window needs at least {SSIM_WINDOW} px; use e.g. 256")
    if max_colour_ratio <= 0:
        raise FastStyleError(f"check.max_colour_ratio={max_colour_ratio}: must be above 0, e.g. 0.6")
    photos = images_below(images) if Path(images).is_dir() else [Path(images)]
    if not photos:
        raise FastStyleError(f"{images}: no photos to check the model on")
    model = open_model(model_path)
    network = model.require_network("the resemblance check").float().eval()
    label = style_label(model, style_weights)
    painting = square_image(style_image, size)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results, rows = [], []
    for path in photos:
        try:
            photo = square_image(path, size)
        except FastStyleError as exc:  # an unreadable photo is skipped and named, the others measured
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        stylized, ssim, photo_colour, stylized_colour = measure(network, photo, painting, style_weights)
        written = save_image(stylized, output_dir / f"{path.stem}_{label}.png")
        results.append(Resemblance(path.name, ssim, photo_colour, stylized_colour, str(written)))
        rows.append([photo, stylized, painting])
    if not results:
        raise FastStyleError(f"{images}: none of its photos could be read")
    grid = save_image(make_grid(rows, ["photo", f"stylized ({label})", "painting"]), output_dir / "grid.png")
    report = {
        "model": str(model_path), "style": label, "size": size, "min_ssim": min_ssim, "max_colour_ratio": max_colour_ratio,
        "photos": [{**asdict(r), "colour_ratio": r.colour_ratio, "keeps_photo": r.keeps_photo(min_ssim),
                    "takes_palette": r.takes_palette(max_colour_ratio)} for r in results],
        "grid": str(grid),
    }
    atomic_write_text(output_dir / "resemblance.json", json.dumps(report, indent=2))
    print(format_table(results, size=size, min_ssim=min_ssim, max_colour_ratio=max_colour_ratio, grid=grid))
    return results


def style_label(model: StyleModel, weights: torch.Tensor | None) -> str:
    """The name of what ``weights`` pick of ``model``'s styles (file names, the grid); a
    one-line error for a multi-style model without weights or weights of the wrong size."""
    names = style_names(model)
    if len(names) == 1:
        return model.style_name
    if weights is None or tuple(weights.shape) != (len(names),):
        got = "none" if weights is None else f"shape {tuple(weights.shape)}"
        raise FastStyleError(f"{model.path.name} holds {len(names)} styles ({', '.join(names)}): the check needs "
                             f"style_weights of shape ({len(names)},), e.g. one-hot for {names[0]}; got {got}")
    return mix_label(weights, names)


def format_table(results: list[Resemblance], *, size: int, min_ssim: float, max_colour_ratio: float, grid: Path) -> str:
    """The printed report: one row per photo, then where the images are."""
    lines = [
        f"\nStyle transfer on photos the model did not train on ({size} px):",
        f"  {'photo':22s} {'SSIM to photo':>15s}   colour distance to painting, photo -> stylized",
    ]
    for r in results:
        keeps = "ok" if r.keeps_photo(min_ssim) else f"below {min_ssim}"
        takes = "ok" if r.takes_palette(max_colour_ratio) else f"above {max_colour_ratio:.0%}"
        lines.append(f"  {r.photo:22s} {r.ssim:8.2f} ({keeps:>5s})   "
                     f"{r.photo_colour:.3f} -> {r.stylized_colour:.3f} = {r.colour_ratio:.0%} ({takes})")
    lines.append(f"  keeps the photo: SSIM >= {min_ssim}; takes the palette: at most {max_colour_ratio:.0%} of the photo's distance")
    lines += [f"  stylized:  {r.stylized}" for r in results]
    lines.append(f"  grid:      {grid}")
    return "\n".join(lines)


def check_after_training(cfg, result: dict) -> list[Resemblance] | None:
    """``train.py``'s ``check`` (e.g. ``experiment=demo``): run the check on the style model
    the run just wrote, into ``<run folder>/held_out/``. ``check.demo_photos`` first fills an
    empty ``check.images`` folder with the demo's held-out sample photos."""
    from fast_style.training.demo import HELD_OUT_PHOTOS, prepare_content
    from fast_style.training.styles import resolve_style_image

    check = cfg.check
    model_path = result.get("style_model")
    if not model_path:
        return None
    if check.demo_photos:
        prepare_content(Path(check.images), photos=HELD_OUT_PHOTOS)
    style = OmegaConf.to_container(cfg.style, resolve=True)
    style_image = resolve_style_image(style_dir=cfg.paths.style_dir, **style)
    return check_resemblance(model_path=model_path, images=check.images, style_image=style_image,
                             output_dir=Path(result["output_dir"]) / "held_out", size=check.size,
                             min_ssim=check.min_ssim, max_colour_ratio=check.max_colour_ratio)
