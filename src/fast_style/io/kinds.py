"""The exported kinds of style model, described once: ONNX, TorchScript and ExecuTorch.

An exported model is a file written by ``scripts/export.py`` that runs whole in its own
runtime (no PyTorch network to tile, cast or compile). Each row of :data:`EXPORTED`
says what the rest of the package needs to know about one kind:

- ``onnx``: suffix ``.onnx``, label ONNX, metadata ``format`` ``fast-style/onnx``;
  detected by its ModelProto head bytes, run by onnxruntime;
- ``torchscript``: suffix ``.pt``, label TorchScript, metadata ``format``
  ``fast-style/torchscript``; detected as a zip holding ``code/`` and ``constants.pkl``,
  run by ``torch.jit`` (only with ``allow_torchscript``: its code runs when loaded);
- ``executorch``: suffix ``.pte``, label ExecuTorch, metadata ``format``
  ``fast-style/executorch``; detected by its flatbuffer identifier ``ET..`` at bytes 4-8,
  run by executorch's runtime (XNNPACK delegate; the ``executorch`` extra).

``name`` is the :attr:`~fast_style.io.model_files.StyleModel.kind` of an opened file,
the ``format=`` of ``scripts/export.py``, and (ONNX) the ``runtime=`` of ``stylize.py``
that runs a PyTorch network through onnxruntime. ``label`` is how messages name the kind.
Detection from content is :func:`fast_style.io.model_files.detect_kind`'s (the kinds
are told apart in a fixed order among the PyTorch ones). This module imports no torch:
:mod:`fast_style.inference.options` reads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from fast_style.io.metadata import EXECUTORCH_FORMAT, ONNX_FORMAT, TORCHSCRIPT_FORMAT


@dataclass(frozen=True)
class ExportedKind:
    """One exported kind (see the module docstring); :meth:`open` loads a file of it."""

    name: str
    suffix: str
    label: str
    format_tag: str
    opener: str  # the function of fast_style.io.runtimes that opens a file: (Runtime, string metadata)
    packages: tuple[str, ...] = ()  # Python packages beyond torch: the exporter's, then the runtime's
    extra: str | None = None  # the pip extra that installs ``packages`` (None: they are dependencies)

    def open(self, path: str | os.PathLike, *, device: str = "auto", threads: int | None = None):
        """(:class:`~fast_style.io.runtimes.Runtime`, string metadata) of a file of this kind."""
        from fast_style.io import runtimes

        return getattr(runtimes, self.opener)(path, device=device, threads=threads)


ONNX = ExportedKind(name="onnx", suffix=".onnx", label="ONNX", format_tag=ONNX_FORMAT, opener="onnx_runtime",
                    packages=("onnx", "onnxruntime"))
TORCHSCRIPT = ExportedKind(name="torchscript", suffix=".pt", label="TorchScript", format_tag=TORCHSCRIPT_FORMAT,
                           opener="torchscript_runtime")
EXECUTORCH = ExportedKind(name="executorch", suffix=".pte", label="ExecuTorch", format_tag=EXECUTORCH_FORMAT,
                          opener="executorch_runtime", packages=("executorch",), extra="executorch")
EXPORTED = {kind.name: kind for kind in (ONNX, TORCHSCRIPT, EXECUTORCH)}


def exported_kind(name: str) -> ExportedKind | None:
    """The row of an exported kind's ``name``; None for the PyTorch kinds."""
    return EXPORTED.get(name)
