"""Style model files: the transform net's weights in safetensors, with metadata.

A style model (``checkpoints/<style>.safetensors``) holds only TransformerNet
tensors and string metadata; loading it runs no code. Metadata keys:

``format``          "fast-style/style-model"
``format_version``  "1"
``arch``            JSON of the TransformerNet config (width, num_residual, norm, upsample)
``style_name``, ``style_sha256``, ``loss`` (JSON of loss weights and layers),
``loss_net`` (which VGG weights made it), ``loss_net_config`` (JSON: arch, pool, ...),
``steps``, ``package_version``, ``created``.

Lightning ``.ckpt`` files are read with ``weights_only=True`` (no pickled code runs);
their transform net lives under the ``transformer.`` prefix of ``state_dict`` and
its config under ``hyper_parameters.model``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from fast_style import __version__
from fast_style.errors import FastStyleError
from fast_style.io.images import atomic_output
from fast_style.nn.transformer import TransformerNet, build_transformer

FORMAT = "fast-style/style-model"
FORMAT_VERSION = "1"


class CheckpointError(FastStyleError):
    """A checkpoint file that cannot be read as what it claims to be."""


def save_style_model(
    model: TransformerNet, path: str | os.PathLike, *, metadata: dict[str, object] | None = None
) -> Path:
    """Write ``model``'s weights and metadata to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": json.dumps(model.config, sort_keys=True),
        "package_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for key, value in (metadata or {}).items():
        meta[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    with atomic_output(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def read_style_model(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a style model file; :class:`CheckpointError` if it is not one."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors style model ({str(exc).splitlines()[0]})") from exc
    if metadata.get("format") != FORMAT or "arch" not in metadata:
        raise CheckpointError(f"{path}: a safetensors file, but not a fast-style model (no '{FORMAT}' metadata)")
    return tensors, metadata


def load_style_model(path: str | os.PathLike) -> tuple[TransformerNet, dict[str, str]]:
    """A ready TransformerNet (eval mode) and the metadata of a style model file."""
    tensors, metadata = read_style_model(path)
    model = build_transformer(json.loads(metadata["arch"]))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match its arch metadata ({str(exc).splitlines()[0]})") from exc
    return model.eval(), metadata


def read_lightning_checkpoint(path: str | os.PathLike) -> dict:
    """The dict inside a Lightning ``.ckpt``, loaded with ``weights_only=True``."""
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: no such file") from exc
    except Exception as exc:  # noqa: BLE001 - corrupt zip, pickle with code, ...: one message
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def transformer_from_lightning(checkpoint: dict, *, source: str = "checkpoint") -> tuple[TransformerNet, dict[str, object]]:
    """TransformerNet and style-model metadata from a loaded Lightning checkpoint dict."""
    hparams = checkpoint.get("hyper_parameters") or {}
    if "model" not in hparams:
        raise CheckpointError(f"{source}: not a fast-style training checkpoint (no model hyper-parameters)")
    model = build_transformer(hparams["model"])
    prefix = "transformer."
    state = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: transform net weights do not match ({str(exc).splitlines()[0]})") from exc
    style = hparams.get("style") or {}
    metadata = {
        "style_name": str(style.get("name", "unknown")),
        "style_sha256": str(style.get("sha256") or ""),
        "loss": hparams.get("loss") or {},
        "loss_net": str(hparams.get("loss_net_source") or hparams.get("loss_net", {})),
        "loss_net_config": dict(hparams.get("loss_net") or {}),
        "steps": str(checkpoint.get("global_step", 0)),
    }
    return model.eval(), metadata


def unique_path(path: Path) -> Path:
    """``path`` if free, else ``<stem>-1<suffix>``, ``<stem>-2<suffix>``, ... (never overwrite)."""
    if not path.exists():
        return path
    for i in range(1, 10_000):
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FastStyleError(f"{path}: too many numbered copies; clean up {path.parent}")


def export_lightning_checkpoint(ckpt: str | os.PathLike, output: str | os.PathLike | None = None, *, overwrite: bool = False) -> Path:
    """Write the style model of a Lightning ``.ckpt``; returns the path written.

    ``output`` defaults to ``<ckpt folder>/<style>.safetensors``; an existing file is
    kept and a numbered name is used instead unless ``overwrite``.
    """
    model, metadata = transformer_from_lightning(read_lightning_checkpoint(ckpt), source=str(ckpt))
    target = Path(output) if output else Path(ckpt).with_name(f"{metadata['style_name']}.safetensors")
    if not overwrite:
        target = unique_path(target)
    return save_style_model(model, target, metadata=metadata)
