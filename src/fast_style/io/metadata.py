"""What a style model says about itself: one dataclass for every file kind.

A style model (``.safetensors``), an exported ONNX model (``metadata_props``) and an
exported TorchScript archive (extra file ``fast_style.json``) all store the same
string-valued metadata; a Lightning ``.ckpt`` holds the same facts as training
hyper-parameters. :class:`StyleModelMetadata` is read from and written to all of them.

String keys as stored (JSON for the structured ones):

``format``           "fast-style/style-model", "fast-style/onnx" or "fast-style/torchscript"
``format_version``   "1"
``style_name``, ``style_sha256``   the painting
``arch``             JSON: TransformerNet config (width, num_residual, norm, upsample)
``loss``             JSON: the loss config group (layers and weights)
``loss_net``         which VGG weights trained it: "imagenet", "file:<path>", "random(seed=N)"
``loss_net_config``  JSON: VGGFeatures kwargs (arch, pool, ...)
``styles``           JSON list of the style names of a multi-style network, in the order of
                     its style weights (absent for a one-style model: ``style_name`` says it)
``steps``            training steps
``package_version``, ``created``, and for exports ``source_kind``, ``torch_version``,
``exporter``, ``input``, ``output``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fast_style import __version__

STYLE_MODEL_FORMAT = "fast-style/style-model"
ONNX_FORMAT = "fast-style/onnx"
TORCHSCRIPT_FORMAT = "fast-style/torchscript"
EXECUTORCH_FORMAT = "fast-style/executorch"
FORMAT_VERSION = "1"
_JSON_FIELDS = ("arch", "loss", "loss_net_config")
_JSON_LISTS = ("styles",)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class StyleModelMetadata:
    """The facts every style model file carries (see the module docstring)."""

    style_name: str = ""
    style_sha256: str = ""
    arch: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    loss_net: str = ""
    loss_net_config: dict[str, Any] = field(default_factory=dict)
    styles: list[str] = field(default_factory=list)
    steps: int | None = None
    package_version: str = __version__
    created: str = field(default_factory=_now)
    # format-specific strings (exports: source_kind, torch_version, exporter, input, output)
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_training(cls, hparams: Mapping[str, Any], *, steps: int) -> StyleModelMetadata:
        """From a StyleTransferModule's hyper-parameters (live, or a ``.ckpt``'s)."""
        style = hparams.get("style") or {}
        return cls(
            style_name=str(style.get("name") or ""),
            styles=[str(name) for name in hparams.get("styles") or []],
            style_sha256=str(style.get("sha256") or ""),
            arch=dict(hparams.get("model") or {}),
            loss=dict(hparams.get("loss") or {}),
            loss_net=str(hparams.get("loss_net_source") or ""),
            loss_net_config=dict(hparams.get("loss_net") or {}),
            steps=int(steps),
        )

    @classmethod
    def from_strings(cls, strings: Mapping[str, str]) -> StyleModelMetadata:
        """Parse stored string metadata; unknown keys go to ``extra``, bad JSON to an empty dict."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra", "steps"}
        values: dict[str, Any] = {}
        for key in known & set(strings):
            value = strings[key]
            if key in _JSON_FIELDS:
                try:
                    value = json.loads(value) if isinstance(value, str) else dict(value)
                except (json.JSONDecodeError, TypeError, ValueError):
                    value = {}
                value = value if isinstance(value, dict) else {}
            if key in _JSON_LISTS:
                try:
                    value = json.loads(value) if isinstance(value, str) else list(value)
                except (json.JSONDecodeError, TypeError, ValueError):
                    value = []
                value = [str(v) for v in value] if isinstance(value, list) else []
            values[key] = value if key in _JSON_FIELDS + _JSON_LISTS else str(value)
        steps = str(strings.get("steps", "")).strip()
        values["steps"] = int(steps) if steps.isdigit() else None
        extra = {k: str(v) for k, v in strings.items() if k not in known and k not in ("steps", "format", "format_version")}
        return cls(**values, extra=extra)

    def to_strings(self, *, format: str) -> dict[str, str]:
        """String metadata for a file of ``format`` (one of the ``*_FORMAT`` constants)."""
        out = {"format": format, "format_version": FORMAT_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or value in (None, "", {}, []):
                continue
            if f.name in _JSON_FIELDS + _JSON_LISTS:
                out[f.name] = json.dumps(value, sort_keys=True)
            else:
                out[f.name] = str(value)
        out.update(self.extra)
        return out
