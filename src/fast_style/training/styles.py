"""Finding the style image: a named style's file in the style folder, downloaded on
first use and checked against its sha256, or any image given by path.

A named style (``configs/style/<name>.yaml``) gives ``file``, ``url`` and ``sha256``.
:func:`resolve_style_image` looks for ``<style_dir>/<file>``; if it is missing it is
downloaded there (progress bar, temporary file, then rename) and verified. A file
whose checksum does not match is an error, never silently used or replaced.
``image=path`` bypasses the lookup and the checksum. ``procedural=<kind>`` draws the
image with the project's own code (the offline demo).

Several styles (``styles=[a, b, ...]``, :func:`style_list`): each entry is the name of a
style config, read from the ``style/`` folder of the run's config search path (the
``configs`` folder), or the path of an image (an entry with a folder or a file suffix),
named after its stem. Each then goes through :func:`resolve_style_image` as above. The
training spec (:mod:`.spec`) reads them once, from folders it is given or the run's.

:func:`check_style_pixels` reads the image's size from its header (nothing is decoded)
and refuses a style image that would reach the loss network with more than
:data:`MAX_STYLE_MEGAPIXELS`: computing its Gram targets keeps several full-resolution
VGG activations of 64 channels (their measured peak: docs/results.md, "Memory").
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import urllib.request
from pathlib import Path, PurePath
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fast_style.errors import FastStyleError
from fast_style.io.images import ImageReadError, atomic_output, image_header

log = logging.getLogger(__name__)

# The largest style image, in megapixels after style.size, that the style targets are
# computed from: 8 keeps their peak memory under about 8 GB (the measured peak per pixel:
# docs/results.md, "Memory"; docs/training.md).
MAX_STYLE_MEGAPIXELS = 8
PAPER_STYLE_SIZE = 512
# The style image size of an image path in ``styles`` when ``style.size`` is null (as style=custom)
IMAGE_ENTRY_SIZE = 256
# The keys of a style config that say which image, and how large
STYLE_KEYS = ("name", "file", "url", "sha256", "image", "size", "procedural")
# Style configs that are not a painting by themselves (an image path in the list replaces custom)
NOT_NAMED_STYLES = ("multi", "custom")


class StyleImageError(FastStyleError):
    """The style image is missing, undownloadable or fails its checksum."""


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, destination: Path, *, sha256: str | None = None, timeout: float = 30.0) -> None:
    """Fetch ``url`` into ``destination`` atomically, with a rich progress bar.

    With ``sha256`` the download is verified before it is renamed into place.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    destination.parent.mkdir(parents=True, exist_ok=True)
    columns = (TextColumn(f"downloading {destination.name}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with atomic_output(destination, suffix=".part") as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with Progress(*columns, transient=True) as progress:
                task = progress.add_task("download", total=total)
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    progress.update(task, advance=len(chunk))
        if sha256 and sha256_of(tmp) != sha256.lower():
            raise StyleImageError(f"download of {url} does not match its sha256; try again or give style.image=PATH")


def resolve_style_image(
    *,
    name: str,
    style_dir: str,
    image: str | None = None,
    file: str | None = None,
    url: str | None = None,
    sha256: str | None = None,
    procedural: str | None = None,
    **_: object,
) -> Path:
    """Path of a readable style image for the ``style`` config group (see module docstring)."""
    if image:
        path = Path(image).expanduser()
        if not path.is_file():
            raise StyleImageError(f"style.image={image}: no such file; give the path of a painting (jpg/png)")
        return path
    if procedural:
        from fast_style.training.demo import draw_style_image

        path = Path(style_dir) / f"{name}.png"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            draw_style_image(kind=procedural, path=path)
        return path
    if not file:
        raise StyleImageError(f"style {name!r} names no file; set style.image=path/to/painting.jpg")

    path = Path(style_dir) / file
    if not path.is_file():
        if not url:
            raise StyleImageError(f"style image {path} is missing and style {name!r} has no url; put the file there")
        log.info("style image %s not found; downloading %s", path, url)
        try:
            download(url, path, sha256=sha256)
        except StyleImageError:
            raise
        except Exception as exc:  # noqa: BLE001 - no network, HTTP errors, timeouts: one message
            raise StyleImageError(
                f"style image {path} is missing and could not be downloaded ({type(exc).__name__}: {exc}); "
                f"copy {file} into {style_dir} (paths.style_dir) or pass style.image=/path/to/{file}"
            ) from exc
    if sha256:
        actual = sha256_of(path)
        if actual != sha256.lower():
            raise StyleImageError(
                f"style image {path} fails its checksum (sha256 {actual[:12]}..., expected {sha256[:12]}...); "
                f"delete it to download it again, or pass style.image={path} to use it anyway"
            )
    return path


def header_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the image file's header, without decoding the pixels."""
    try:
        return image_header(path)[0]
    except ImageReadError as exc:
        raise StyleImageError(f"style image {exc}; give a jpg/png painting with style.image=PATH") from exc


def check_style_pixels(path: str | os.PathLike, *, size: int | None) -> tuple[int, int]:
    """The (width, height) the style image will have once its longer side is bounded by
    ``size`` (None: unchanged); :class:`StyleImageError` if that exceeds
    :data:`MAX_STYLE_MEGAPIXELS`, naming ``style.size`` and a value that fits."""
    width, height = header_size(path)
    scale = 1.0 if size is None or max(width, height) <= size else size / max(width, height)
    used = (round(width * scale), round(height * scale))
    megapixels = used[0] * used[1] / 1e6
    if megapixels <= MAX_STYLE_MEGAPIXELS:
        return used
    longest = math.floor(math.sqrt(MAX_STYLE_MEGAPIXELS * 1e6 * max(width, height) / min(width, height)))
    fix = f"set style.size={PAPER_STYLE_SIZE} (the paper's 256-512; at most {longest} for this image)"
    if size is None:
        raise StyleImageError(f"style image {path} is {width}x{height} px ({megapixels:.0f} MP); with style.size=null "
                              f"it must be at most {MAX_STYLE_MEGAPIXELS} MP; {fix}")
    raise StyleImageError(f"style.size={size} makes style image {path} {used[0]}x{used[1]} px ({megapixels:.0f} MP), "
                          f"more than {MAX_STYLE_MEGAPIXELS} MP; {fix}")


# ------------------------------------------------------------------------ several styles


def is_image_entry(entry: str) -> bool:
    """Whether an entry of ``styles`` is the path of an image (it has a folder or a file
    suffix: ``art/udnie.jpg``, ``udnie.jpg``) rather than a style config's name (``udnie``)."""
    path = PurePath(os.path.expanduser(entry))
    return len(path.parts) > 1 or bool(path.suffix)


def style_config_dirs(cfg: DictConfig) -> list[Path]:
    """The ``style/`` folders of the run's config search path: from ``cfg.hydra`` when the
    config was composed with it (tests), else from the running Hydra app (``@hydra.main``)."""
    from hydra.core.hydra_config import HydraConfig

    if "hydra" in cfg:
        sources = cfg.hydra.runtime.config_sources
    elif HydraConfig.initialized():
        sources = HydraConfig.get().runtime.config_sources
    else:
        sources = []
    return [Path(source.path) / "style" for source in sources if source.schema == "file"]


def known_styles(dirs: list[Path]) -> list[str]:
    """Names of the style configs in ``dirs`` that can be listed in ``styles``."""
    names = {p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names - set(NOT_NAMED_STYLES))


def named_style(name: str, dirs: list[Path]) -> dict[str, Any]:
    """The style config ``<dir>/<name>.yaml`` as a plain dict, or one line naming the known styles."""
    found = next((d / f"{name}.yaml" for d in dirs if (d / f"{name}.yaml").is_file()), None)
    if found is None or name in NOT_NAMED_STYLES:
        known = ", ".join(known_styles(dirs)) or f"none found (searched {', '.join(map(str, dirs)) or 'no config folder'})"
        raise StyleImageError(f"styles: no style named {name!r}; use one of {known}, or the path of an image "
                              "(e.g. art/painting.jpg)")
    values = OmegaConf.to_container(OmegaConf.load(found), resolve=True)
    return {key: values.get(key) for key in STYLE_KEYS}


def style_list(cfg: DictConfig, *, dirs: list[Path] | None = None) -> list[dict[str, Any]]:
    """The styles a run trains, in order, each a style-config dict (keys :data:`STYLE_KEYS`).

    ``styles`` unset: the one ``style`` group, as today. Else one dict per entry: a named
    style's config, or ``{"name": stem, "image": path}`` for an image path; each is named
    by its entry as written (the name ``${styles_name:...}`` joins for ``style.name``).
    ``style.size``, when set, is every style image's size; null keeps each named style's
    own and gives image paths :data:`IMAGE_ENTRY_SIZE`. ``dirs``: the folders of the style
    configs (None: :func:`style_config_dirs`)."""
    entries = cfg.get("styles")
    if entries is None:
        style = OmegaConf.to_container(cfg.style, resolve=True, throw_on_missing=True)
        return [{key: style.get(key) for key in STYLE_KEYS}]
    dirs = style_config_dirs(cfg) if dirs is None else list(dirs)
    size = cfg.style.get("size")
    specs = []
    for entry in map(str, entries):
        if is_image_entry(entry):
            if not Path(entry).expanduser().is_file():
                raise StyleImageError(f"styles: {entry}: no such image file; give the path of a painting (jpg/png) "
                                      f"or a style's name ({', '.join(known_styles(dirs))})")
            spec = dict.fromkeys(STYLE_KEYS) | {"image": entry, "size": IMAGE_ENTRY_SIZE}
        else:
            spec = named_style(entry, dirs)
        specs.append(spec | {"name": PurePath(entry).stem} | ({"size": size} if size is not None else {}))
    return specs
