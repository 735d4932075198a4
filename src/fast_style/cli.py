"""What entry points share: user errors become one line on stderr and exit status 2."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from omegaconf.errors import MissingMandatoryValue

from fast_style.errors import FastStyleError


@contextlib.contextmanager
def report_user_errors() -> Iterator[None]:
    """Turn :class:`FastStyleError` and missing config values into ``error: ...`` + exit 2."""
    try:
        yield
    except FastStyleError as exc:
        _fail(str(exc))
    except MissingMandatoryValue as exc:
        key = getattr(exc, "full_key", None) or "a value"
        _fail(f"{key} must be set; pass it on the command line, e.g. {key}=...")


def _fail(message: str) -> None:
    logging.getLogger("fast_style").debug("user error", exc_info=True)
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def print_summary(summary, *, seconds: float) -> None:
    """The end of a stylize run: each skipped file (stderr), then ``done N, skipped N, failed N``."""
    for path, why in summary.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    print(summary.line(seconds), flush=True)
