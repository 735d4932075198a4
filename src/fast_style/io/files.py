"""Writing files safely: atomically (temporary file, then rename) and never over an existing one."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fast_style.errors import FastStyleError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMP_MARK = "fast-style-tmp"


def owned_prefix(name: str) -> str:
    """``<name>.fast-style-tmp-<host>-<pid>-``: a temporary name that says which live
    process owns it, so :func:`sweep_stale` can remove what a killed process left."""
    return f"{name}.{TEMP_MARK}-{socket.gethostname()}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale(folder: str | os.PathLike, pattern: str = f"*.{TEMP_MARK}-*") -> list[Path]:
    """Remove files and folders in ``folder`` named by :func:`owned_prefix` whose process
    (on this host) is gone, e.g. after SIGKILL; returns what was removed."""
    removed = []
    host = socket.gethostname()
    for path in Path(folder).glob(pattern):
        parts = path.name.split(f"{TEMP_MARK}-", 1)[-1].rsplit("-", 2)  # host (may hold dashes), pid, random
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit() or _alive(int(parts[1])):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


class OutputExistsError(FastStyleError):
    """The output appeared (another process wrote it) while this one was writing, and may not be replaced."""


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, suffix: str = "", replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it becomes ``path`` (with the
    usual umask permissions), on failure it is removed. The temporary name is unique to
    this process and call (:func:`owned_prefix` plus a random part), so writers never
    share one, and ``path`` is at every moment absent, the old file or the complete new one.

    ``replace=True``: renamed over ``path`` (of several writers at once, the last wins,
    whole). ``replace=False``: linked to ``path`` only if it does not exist yet, atomically
    (``os.link``), so of several writers exactly one wins and the others get an
    :class:`OutputExistsError`; where the file system has no hard links, a check then a
    rename (a small race)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=owned_prefix(f".{path.stem}"), suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        publish(Path(tmp), path, replace=replace)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def publish(tmp: Path, path: Path, *, replace: bool) -> None:
    """A finished temporary file ``tmp`` becomes ``path`` with the usual umask permissions:
    renamed over it (``replace``), or only where ``path`` does not exist yet
    (:class:`OutputExistsError` otherwise); :func:`atomic_output`'s last step, for writers
    whose temporary file outlives one ``with`` block (a video encoded as frames come)."""
    os.chmod(tmp, 0o666 & ~_umask())
    if replace:
        os.replace(tmp, path)
    else:
        _publish_new(tmp, path)


def _publish_new(tmp: Path, path: Path) -> None:
    """``tmp`` becomes ``path`` unless ``path`` exists (:class:`OutputExistsError`)."""
    exists = OutputExistsError(f"{path} exists: another process wrote it meanwhile (pass overwrite=true to replace it)")
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise exists from None
    except OSError:  # no hard links here (some network and FAT file systems)
        if os.path.lexists(path):
            raise exists from None
        os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def unique_path(path: Path) -> Path:
    """``path`` if free, else ``<stem>-1<suffix>``, ``<stem>-2<suffix>``, ... (never overwrite)."""
    if not path.exists():
        return path
    for i in range(1, 10_000):
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FastStyleError(f"{path}: too many numbered copies; clean up {path.parent}")


_UNSAFE_NAME_CHARS = re.compile(r"[^\w.+-]+")


def safe_name(text: str, *, fallback: str = "styled") -> str:
    """``text`` made safe as one file-name component: runs of characters other than
    letters (any script), digits and ``. _ + -`` become ``_``, and leading dots and dashes are
    dropped (trailing dots too), so a name read from a file (``x/../../evil``) can never
    become a path, a hidden file or an option. ``fallback`` when no letter or digit is left."""
    name = _UNSAFE_NAME_CHARS.sub("_", str(text)).lstrip(".-").rstrip(".")[:100]
    return name if any(c.isalnum() for c in name) else fallback
