"""Every style model file, opened by one function: :func:`open_model` -> :class:`StyleModel`.

Kinds, detected from the file's content, never its extension (:func:`detect_kind`):

``style-model``       our ``.safetensors`` file: TransformerNet tensors + string metadata;
``lightning``         a Lightning ``.ckpt``; only the transform net is loaded;
``pytorch-examples``  a pytorch/examples ``fast_neural_style`` state dict (``.pth`` / ``.model``,
                      0-255 pixels; converted by :mod:`fast_style.io.pytorch_examples`);
``state-dict``        a bare state dict of our TransformerNet (``torch.save(net.state_dict())``);
``onnx``, ``torchscript``, ``executorch``  exported by ``scripts/export.py``; they run whole through
                      :mod:`fast_style.io.runtimes` and have no PyTorch network.

Nothing runs code while loading: torch files are read with ``torch.load(weights_only=True)``
and safetensors files contain no code at all. TorchScript archives are programs (their
code runs when loaded and called), so they are refused unless ``allow_torchscript=True``.
The network's architecture is read from the tensors' shapes and key names
(:func:`arch_of`), never trusted from metadata text, and a disagreeing ``arch`` in the
metadata is an error. The network is sized (on the meta device, no memory) and checked
against every tensor before it is built: at most :data:`MAX_PARAMETERS` parameters and
:data:`MAX_RESIDUAL` residual blocks; weights that are NaN or infinite are refused.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from fast_style.errors import CheckpointError, FastStyleError, first_line
from fast_style.io.files import atomic_output
from fast_style.io.kinds import EXECUTORCH, EXPORTED, ONNX, TORCHSCRIPT, exported_kind
from fast_style.io.metadata import STYLE_MODEL_FORMAT, StyleModelMetadata
from fast_style.io.pytorch_examples import from_examples, is_examples_state
from fast_style.io.runtimes import Runtime
from fast_style.nn.transformer import TransformerNet

KINDS = ("style-model", "lightning", "pytorch-examples", "state-dict", *EXPORTED)
DEPLOYED_KINDS = tuple(EXPORTED)
# ModelProto field tags that may follow ir_version (field 1): producer_name .. functions.
_ONNX_NEXT_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA}
_LIGHTNING_PREFIX = "transformer."
MAX_PARAMETERS = 100_000_000  # the paper's network has 1.7 M; 100 M is 400 MB of float32 weights
MAX_RESIDUAL = 64  # the paper uses 5


@dataclass
class StyleModel:
    """An opened style model file.

    ``network`` is a TransformerNet in eval mode for the PyTorch kinds, None for
    exported ones; ``runtime`` runs an exported one ((N, 3, H, W) float32 CPU in
    [0, 1], and style weights (S,) for a multi-style model -> unclamped float32 CPU;
    :class:`~fast_style.io.runtimes.Runtime`), None otherwise.
    """

    path: Path
    kind: str
    metadata: StyleModelMetadata
    network: TransformerNet | None = None
    runtime: Runtime | None = None

    @property
    def style_name(self) -> str:
        """The painting's name from the metadata, else the file's stem (used in output names)."""
        name = self.metadata.style_name
        return name if name and name != "unknown" else self.path.stem

    @property
    def deployed(self) -> bool:
        return self.kind in DEPLOYED_KINDS

    @property
    def label(self) -> str:
        """How messages name the kind: ONNX, TorchScript (the exported kinds' table), else PyTorch."""
        exported = exported_kind(self.kind)
        return exported.label if exported is not None else "PyTorch"

    @property
    def num_styles(self) -> int:
        """How many styles the model holds (S of its (S, C) norm parameters; 1 for a one-style model)."""
        if self.network is not None:
            return self.network.num_styles
        return self.runtime.num_styles if self.runtime is not None else 1

    def require_network(self, purpose: str) -> TransformerNet:
        """The PyTorch network, or a one-line error saying why ``purpose`` needs one."""
        if self.network is None:
            raise CheckpointError(
                f"{self.path}: an exported {self.label} model; it can be run (stylize.py) but not turned back into a "
                f"PyTorch network, which {purpose} needs: use the .safetensors/.ckpt/.pth it came from"
            )
        return self.network


# ----------------------------------------------------------------------------- detection


def _is_safetensors(head: bytes, size: int) -> bool:
    """safetensors: 8-byte little-endian header length, then a JSON header starting with '{'."""
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 0 < length <= size - 8 and head[8:9] == b"{"


def _is_onnx(head: bytes) -> bool:
    """ONNX ModelProto: field 1 (ir_version, varint tag 0x08), a small version number,
    then another ModelProto field (producer name, graph, opset import, ...)."""
    return len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] < 0x80 and head[2] in _ONNX_NEXT_TAGS


def _is_executorch(head: bytes) -> bool:
    """ExecuTorch .pte: a flatbuffer whose file identifier (bytes 4-8) is ``ET`` and a two-digit
    schema version (``ET12``)."""
    return len(head) >= 8 and head[4:6] == b"ET" and head[6:8].isdigit()


def _is_torchscript(path: Path) -> bool:
    """torch.jit.save archives hold ``<name>/constants.pkl`` and ``<name>/code/``; torch.save zips do not."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _torch_load(path: Path) -> object:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle safely is one message
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({first_line(exc, limit=200)})") from exc


def detect_kind(path: str | os.PathLike) -> tuple[str, object]:
    """(kind, payload) of a model file; :class:`CheckpointError` for anything else.

    The payload is the ``weights_only`` torch object for torch files, else None.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; ckpt= must name a checkpoint file")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if _is_safetensors(head, path.stat().st_size):
        return "style-model", None
    if _is_onnx(head):
        return ONNX.name, None
    if _is_executorch(head):
        return EXECUTORCH.name, None
    is_zip = zipfile.is_zipfile(path)
    if is_zip and _is_torchscript(path):
        return TORCHSCRIPT.name, None
    if not (is_zip or head[:1] == b"\x80"):  # torch.save: a zip archive or a legacy pickle
        raise CheckpointError(
            f"{path}: not a checkpoint (expected a .safetensors style model, a Lightning .ckpt, "
            "a pytorch/examples .pth/.model state dict or an exported .onnx / TorchScript / .pte model)"
        )
    payload = _torch_load(path)
    if isinstance(payload, dict) and "state_dict" in payload:
        return "lightning", payload
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        if is_examples_state(set(payload)):
            return "pytorch-examples", payload
        if "conv1.conv.conv.weight" in payload and "head.conv.weight" in payload:
            return "state-dict", payload
    raise CheckpointError(f"{path}: a torch file, but neither a Lightning checkpoint nor a style-transfer state dict")


# ------------------------------------------------------------------------------ opening


def arch_of(state: dict[str, torch.Tensor], *, source: str) -> dict[str, object]:
    """TransformerNet config read from a state dict's key names and tensor shapes."""
    try:
        width = int(state["conv1.conv.conv.weight"].shape[0])
    except (KeyError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"{source}: no transform network weights (conv1.conv.conv.weight)") from exc
    blocks = {k.split(".")[1] for k in state if k.startswith("residuals.")}
    arch = {
        "width": width,
        "num_residual": len(blocks),
        "norm": "batch" if any(k.endswith("running_mean") for k in state) else "instance",
        "upsample": "nearest" if "up1.conv.conv.weight" in state else "transposed",
        "input_skip": "input_skip" in state,
    }
    norm = state.get("conv1.norm.weight")
    if isinstance(norm, torch.Tensor) and norm.dim() == 2:  # conditional instance norm: (styles, channels)
        arch["num_styles"] = int(norm.shape[0])
    return arch


def network_from_state(state: dict[str, torch.Tensor], *, source: str, claimed: dict | None = None) -> TransformerNet:
    """A TransformerNet (eval mode) holding ``state``; ``claimed`` is the metadata's arch, checked.

    The network the tensors describe is first built on the meta device (no memory) and
    compared with them, so a file cannot make us allocate more than its own tensors."""
    arch = arch_of(state, source=source)
    if claimed and any(claimed.get(key) != value for key, value in arch.items() if key in claimed):
        raise CheckpointError(f"{source}: its metadata says arch {claimed}, but its tensors are {arch}")
    if arch["num_residual"] > MAX_RESIDUAL:
        raise CheckpointError(f"{source}: {arch['num_residual']} residual blocks, above the limit of {MAX_RESIDUAL}; "
                              "not a style model this project can run")
    with torch.device("meta"):
        shape = TransformerNet(**arch).state_dict()
    count = sum(t.numel() for k, t in shape.items() if not k.endswith("num_batches_tracked"))
    if count > MAX_PARAMETERS:
        raise CheckpointError(f"{source}: a network of {count / 1e6:.0f} M parameters, above the limit of "
                              f"{MAX_PARAMETERS / 1e6:.0f} M; not a style model this project can run")
    wrong = sorted(set(shape) ^ set(state)) or [k for k, t in shape.items() if tuple(state[k].shape) != tuple(t.shape)]
    if wrong:
        raise CheckpointError(f"{source}: weights do not fit TransformerNet {arch} (tensor {wrong[0]} "
                              f"{'missing or unexpected' if wrong[0] not in shape or wrong[0] not in state else 'has the wrong shape'})")
    broken = [k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if broken:
        raise CheckpointError(f"{source}: {len(broken)} weight tensor(s) hold NaN or infinite values ({broken[0]}); "
                              "the model is broken (a diverged training run?)")
    model = TransformerNet(**arch)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not fit TransformerNet ({first_line(exc)})") from exc
    return model.eval()


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            strings = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors style model ({first_line(exc)})") from exc
    if strings.get("format") != STYLE_MODEL_FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not a fast-style model (no '{STYLE_MODEL_FORMAT}' metadata)")
    return tensors, strings


class ModelTypeError(CheckpointError, TypeError):
    """A model given as something that is neither a model file's path nor an opened model."""


def open_model(
    path: str | os.PathLike, *, device: str = "cpu", threads: int | None = None, allow_torchscript: bool = False
) -> StyleModel:
    """Open any model file (see the module docstring) as a :class:`StyleModel`.

    ``device`` and ``threads`` apply to exported models' runtimes only; PyTorch
    networks are returned on the CPU (move them where you like). ``allow_torchscript``:
    open a TorchScript archive, which runs its code (refused otherwise). A ``path`` that
    is not a str or os.PathLike is a :class:`ModelTypeError` (also a ``TypeError``).
    """
    if not isinstance(path, str | os.PathLike):
        raise ModelTypeError(f"model={path!r} is of type {type(path).__name__}; give the path of a model file "
                             "(str or pathlib.Path) or an opened fast_style.StyleModel")
    path = Path(path)
    kind, payload = detect_kind(path)
    source = str(path)
    if kind == TORCHSCRIPT.name and not allow_torchscript:
        raise CheckpointError(
            f"{path}: a TorchScript model is a program whose code runs when it is loaded; refused unless you trust "
            "its source: pass allow_torchscript=true, or use the .safetensors / .onnx file instead")
    if kind in EXPORTED:
        run, strings = EXPORTED[kind].open(path, device=device, threads=threads)
        return StyleModel(path, kind, StyleModelMetadata.from_strings(strings), runtime=run)
    if kind == "style-model":
        state, strings = _read_safetensors(path)
        metadata = StyleModelMetadata.from_strings(strings)
    elif kind == "lightning":
        hparams = payload.get("hyper_parameters") or {}
        if "model" not in hparams:
            raise CheckpointError(f"{path}: not a fast-style training checkpoint (no model hyper-parameters)")
        state = {k[len(_LIGHTNING_PREFIX):]: v for k, v in payload["state_dict"].items() if k.startswith(_LIGHTNING_PREFIX)}
        metadata = StyleModelMetadata.from_training(hparams, steps=int(payload.get("global_step", 0)))
    elif kind == "pytorch-examples":
        try:
            state = from_examples(payload)
        except FastStyleError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
        metadata = StyleModelMetadata()
    else:
        state, metadata = payload, StyleModelMetadata()
    network = network_from_state(state, source=source, claimed=metadata.arch)
    metadata.arch = dict(network.config)
    return StyleModel(path, kind, metadata, network=network)


def save_style_model(
    model: TransformerNet, path: str | os.PathLike, *, metadata: StyleModelMetadata | None = None
) -> Path:
    """Write ``model``'s weights and ``metadata`` (its ``arch`` from the model) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = dataclasses.replace(metadata or StyleModelMetadata(), arch=dict(model.config))
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    with atomic_output(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata.to_strings(format=STYLE_MODEL_FORMAT))
    return path
