"""Images for the offline demo: a painting drawn by code, photos from scikit-image.

Nothing here is downloaded. ``draw_style_image("swirls")`` paints thick brush
strokes that follow a field of vortices in a night-sky palette; ``prepare_content``
copies scikit-image's bundled sample photos (they ship inside its wheel) into a
folder, or draws simple scenes when scikit-image is not installed.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fast_style.errors import FastStyleError
from fast_style.io.images import save_image

log = logging.getLogger(__name__)

# scikit-image's colour and grey sample photos; HELD_OUT are never trained on, so that
# the demo's check (fast_style.evaluation.resemblance_check) sees photos the model has not seen
TRAINING_PHOTOS = ("astronaut", "rocket", "motorcycle", "camera", "coins", "hubble_deep_field",
                   "immunohistochemistry", "retina")
HELD_OUT_PHOTOS = ("chelsea", "coffee")
NIGHT_PALETTE = ((22, 44, 96), (38, 76, 150), (70, 120, 190), (120, 170, 220), (236, 206, 84), (250, 236, 150), (18, 28, 50))


def _flow_angle(x: float, y: float, centres: np.ndarray, size: int) -> float:
    """Direction of a flow made of a few vortices plus a gentle horizontal drift."""
    vx, vy = 0.35, 0.0
    for cx, cy, spin in centres:
        dx, dy = x - cx, y - cy
        r2 = dx * dx + dy * dy + (0.05 * size) ** 2
        strength = spin * (0.25 * size) ** 2 / r2
        vx += -dy / math.sqrt(r2) * strength
        vy += dx / math.sqrt(r2) * strength
    return math.atan2(vy, vx)


def draw_swirls(size: int = 384, *, seed: int = 0) -> Image.Image:
    """A swirling brush-stroke painting, ``size`` x ``size`` RGB."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), NIGHT_PALETTE[0])
    draw = ImageDraw.Draw(image)
    centres = np.array([[rng.uniform(0.15, 0.85) * size, rng.uniform(0.15, 0.85) * size, rng.choice([-1, 1])] for _ in range(4)])
    step = size / 90
    for stroke in range(1400):
        x, y = rng.uniform(0, size, 2)
        colour = NIGHT_PALETTE[rng.integers(len(NIGHT_PALETTE))]
        jitter = rng.integers(-18, 19, 3)
        colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, jitter, strict=True))
        width = int(rng.integers(2, 6)) if stroke > 400 else int(rng.integers(6, 12))
        points = [(x, y)]
        for _ in range(int(rng.integers(8, 24))):
            angle = _flow_angle(x, y, centres, size)
            x, y = x + step * math.cos(angle), y + step * math.sin(angle)
            points.append((x, y))
        draw.line(points, fill=colour, width=width, joint="curve")
    return image.filter(ImageFilter.SMOOTH)


def draw_style_image(*, kind: str, path: Path, size: int = 384) -> Path:
    """Draw the procedural style ``kind`` into ``path`` (PNG)."""
    if kind != "swirls":
        raise FastStyleError(f"style.procedural={kind!r}: the only drawn style is 'swirls'")
    return save_image(draw_swirls(size), path)


def _draw_scene(seed: int, size: int = 320) -> Image.Image:
    """A simple scene (sky, hills, sun, houses) for machines without scikit-image."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(120, 220, 3)))
    draw = ImageDraw.Draw(image)
    draw.ellipse([size * 0.65, size * 0.1, size * 0.85, size * 0.3], fill=(250, 220, 120))
    for i in range(3):
        top = size * (0.45 + 0.12 * i)
        draw.polygon([(0, size), (0, top), (size * 0.5, top - size * 0.1), (size, top), (size, size)],
                     fill=tuple(int(v) for v in rng.integers(30, 140, 3)))
    for _ in range(4):
        x, w = rng.uniform(0, size * 0.8), rng.uniform(size * 0.08, size * 0.16)
        y = size * 0.8
        draw.rectangle([x, y - w, x + w, y], fill=tuple(int(v) for v in rng.integers(60, 255, 3)))
        draw.polygon([(x, y - w), (x + w / 2, y - 1.6 * w), (x + w, y - w)], fill=(150, 40, 30))
    return image


def _sample_photo(name: str) -> Image.Image:
    import skimage.data

    array = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    image = Image.fromarray(array).convert("RGB")
    if max(image.size) > 640:
        image.thumbnail((640, 640), Image.Resampling.LANCZOS)
    return image


def prepare_content(root: Path, *, photos: tuple[str, ...] = TRAINING_PHOTOS) -> Path:
    """Fill ``root`` with the demo's ``photos`` unless it already holds images; returns ``root``."""
    from fast_style.io.images import IMAGE_EXTENSIONS

    if root.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in root.iterdir()):
        return root
    root.mkdir(parents=True, exist_ok=True)
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        log.warning("scikit-image is not installed; the demo draws simple scenes instead of photos")
        for name in photos:  # one scene per photo, seeded by its place among all of them
            save_image(_draw_scene((*TRAINING_PHOTOS, *HELD_OUT_PHOTOS).index(name)), root / f"scene_{name}.png")
        return root
    for name in photos:
        save_image(_sample_photo(name), root / f"{name}.png")
    log.info("demo photos (scikit-image samples) written to %s", root)
    return root
