"""A real headless Chromium for the tests of web pages (Debian's ``chromium``, driven by
Playwright through ``executable_path``: no browser is downloaded).

``chromium_page`` (a conftest fixture) gives a fresh page; where no Chromium can start the
test is skipped with one line that says how to get one, and FAST_STYLE_REQUIRE_BROWSER=1
(set by .ci/run) turns that skip into a failure.
"""

from __future__ import annotations

import os
import shutil

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-swiftshader"]


def chromium_executable() -> str | None:
    """$FAST_STYLE_CHROMIUM, else the first Chromium on PATH."""
    named = os.environ.get("FAST_STYLE_CHROMIUM")
    if named:
        return named
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def why_no_browser() -> str | None:
    """None when Playwright and a Chromium are both there, else what is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if chromium_executable() is None:
        return "no chromium on PATH (apt-get install chromium, or set FAST_STYLE_CHROMIUM)"
    return None
