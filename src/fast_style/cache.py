"""The user's cache folder: work that can be redone, kept between runs (never the user's data).

Where: ``$FAST_STYLE_CACHE`` if set, else ``$XDG_CACHE_HOME/fast-style``, else
``~/.cache/fast-style``. Each kind of entry has its own subfolder (``index/`` for the
training folders' file indexes). Entries are written atomically (temporary file, then
rename), so concurrent writers leave one whole entry, and a reader that finds an entry
it cannot parse rebuilds it instead of trusting it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CACHE_ENV = "FAST_STYLE_CACHE"


def cache_root() -> Path:
    """The cache folder (see the module docstring); not created here."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fast-style"


def cache_file(kind: str, key: str, suffix: str = ".json") -> Path:
    """``<cache root>/<kind>/<first 20 hex digits of sha1(key)><suffix>``: one entry per key."""
    return cache_root() / kind / (hashlib.sha1(key.encode()).hexdigest()[:20] + suffix)
