"""Start-up work cached per model: ``precision=auto``'s decision and the in-memory ONNX export.

Both cost seconds at the start of every run and depend only on the model (and, for the
decision, on the device), so a second run of the same model on the same machine takes
them from the user's cache folder (:mod:`fast_style.cache`) instead:

- ``precision/<hash>.json``: ``{"version": 1, "key": "<the key below>", "dtype": "bf16" |
  "fp16" | "fp32", "psnr_db": float | null, "mean_diff": float | null}``, the precision the
  calibration chose and the agreement it measured (null for fp32 when nothing met the bound);
- ``onnx/<hash>.onnx``: the serialized export of the network.

Keys. The model is its *content*: sha256 over the network's architecture (its
``config``) and every tensor of its state dict (name, dtype, shape, bytes), so the same
weights share entries whatever file holds them, and a file changed in place gets new
ones. An export adds the torch version and :data:`EXPORT_VERSION`. A decision adds the
device (CUDA: name, capability and CUDA version; CPU: model name and whether bf16 is
native), the torch version, the precisions tried, the style weights and the strength the
runner applies, since each changes the output being judged.

Trust. An entry is used only when it parses to the shape above, has this key and names one
of the run's precisions; a cached export is checked against PyTorch as a fresh one is, and
exported again when that fails. Anything else is rebuilt (with a notice), never trusted.
Entries are written atomically (temporary file, then rename), so concurrent runs leave
one whole entry. ``startup_cache=false`` (a stylize option) neither reads nor writes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from fast_style.cache import cache_file
from fast_style.devices import native_bf16
from fast_style.errors import first_line
from fast_style.inference.runners.base import notice
from fast_style.inference.runners.pytorch import dtype_name
from fast_style.io.files import atomic_output, atomic_write_text, sweep_stale
from fast_style.io.kinds import ONNX

CACHE_VERSION = 1
# bump when fast_style.io.export.onnx_bytes changes what it writes
EXPORT_VERSION = 1


def network_digest(network: torch.nn.Module) -> str:
    """sha256 (hex) of ``network``'s architecture and weights (see the module docstring)."""
    digest = hashlib.sha256(json.dumps(getattr(network, "config", {}), sort_keys=True, default=str).encode())
    for name, tensor in network.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def device_fingerprint(device: torch.device) -> str:
    """What about ``device`` changes a reduced precision's numbers: its kind and model."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        return f"cuda:{torch.cuda.get_device_name(index)}:sm{major}{minor}:cuda{torch.version.cuda}"
    if device.type == "cpu":
        return f"cpu:{_cpu_model()}:{platform.machine()}:native_bf16={native_bf16(device)}"
    return device.type


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass(frozen=True)
class Decision:
    """What ``precision=auto`` chose for a model on a device, and the agreement it measured."""

    dtype: torch.dtype
    psnr_db: float | None = None
    mean_diff: float | None = None

    def line(self) -> str:
        if self.psnr_db is None or self.mean_diff is None:
            return "decided on an earlier run"
        return (f"PSNR {self.psnr_db:.1f} dB, mean difference {self.mean_diff * 255:.2f}/255 against fp32 "
                "on an earlier run's first photo")


@dataclass
class StartupCache:
    """The cache entries of one network: its ONNX export, and its precision decision on
    ``device`` for ``candidates`` with ``style`` weights and ``strength``."""

    network: torch.nn.Module
    device: torch.device
    candidates: tuple[torch.dtype, ...] = ()
    style: tuple[float, ...] = ()
    strength: float = 1.0
    warned: set[str] = field(default_factory=set)

    @cached_property
    def digest(self) -> str:
        return network_digest(self.network)

    def _decision_key(self) -> str:
        tried = ",".join(dtype_name(d) for d in self.candidates)
        style = ",".join(f"{w:.6g}" for w in self.style)
        return (f"precision:v{CACHE_VERSION}:{self.digest}:{device_fingerprint(self.device)}:torch{torch.__version__}"
                f":tried={tried}:style={style}:strength={self.strength:.6g}")

    def _export_key(self) -> str:
        return f"{ONNX.name}:v{CACHE_VERSION}.{EXPORT_VERSION}:{self.digest}:torch{torch.__version__}"

    def _rebuild(self, path: Path, why: str) -> None:
        if path.name not in self.warned:
            self.warned.add(path.name)
            notice(f"start-up cache: {path} {why}; making it again")
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)

    # ---------------------------------------------------------------- precision decisions

    def decision(self) -> Decision | None:
        """The cached decision for this run, or None (none yet, or one not to trust)."""
        key = self._decision_key()
        path = cache_file("precision", key)
        try:
            entry = json.loads(path.read_text())
            names = {dtype_name(d): d for d in self.candidates}
            if not (isinstance(entry, dict) and entry.get("version") == CACHE_VERSION and entry.get("key") == key
                    and entry.get("dtype") in names
                    and all(entry.get(k) is None or isinstance(entry.get(k), int | float) for k in ("psnr_db", "mean_diff"))):
                raise ValueError("not a precision decision of this model, device and run")
            return Decision(names[entry["dtype"]], entry.get("psnr_db"), entry.get("mean_diff"))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError, TypeError) as exc:
            self._rebuild(path, f"cannot be used ({first_line(exc, limit=120)})")
            return None

    def remember(self, decision: Decision) -> None:
        key = self._decision_key()
        entry = {"version": CACHE_VERSION, "key": key, "dtype": dtype_name(decision.dtype),
                 "psnr_db": decision.psnr_db, "mean_diff": decision.mean_diff}
        self._write(cache_file("precision", key), lambda path: atomic_write_text(path, json.dumps(entry)))

    # ---------------------------------------------------------------- the ONNX export

    def onnx_path(self) -> Path:
        return cache_file(ONNX.name, self._export_key(), suffix=ONNX.suffix)

    def cached_onnx(self) -> bytes | None:
        """The cached export's bytes, or None."""
        try:
            return self.onnx_path().read_bytes() or None
        except OSError:
            return None

    def keep_onnx(self, model: bytes) -> None:
        def write(path: Path) -> None:
            with atomic_output(path) as tmp:
                tmp.write_bytes(model)

        self._write(self.onnx_path(), write)

    def forget_onnx(self, why: str) -> None:
        self._rebuild(self.onnx_path(), why)

    def _write(self, path: Path, write) -> None:
        """Write an entry; a cache folder that cannot be written only costs the next run its start-up."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale(path.parent)
            write(path)
        except OSError as exc:
            if "write" not in self.warned:
                self.warned.add("write")
                notice(f"start-up cache: cannot write {path.parent} ({first_line(exc, limit=120)}); "
                        "the next run redoes this start-up (set FAST_STYLE_CACHE to a writable folder)")
