"""Serve a web export's folder on localhost from a thread (tests, the web benchmark, the
docs screenshot); users run ``python -m http.server`` in the folder instead.

``isolated=True`` adds ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp``, which make the page cross-origin isolated,
so that onnxruntime-web's wasm backend may use threads (SharedArrayBuffer); without them
it runs on one thread, as under ``python -m http.server``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class _Handler(SimpleHTTPRequestHandler):
    isolated = False

    def end_headers(self):
        if self.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 - quiet: the page's requests are not news
        pass


@contextlib.contextmanager
def serve_folder(folder: str | os.PathLike, *, isolated: bool = False, port: int = 0) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (``port`` 0: a free one) while the block runs; yields
    the base URL (``http://127.0.0.1:PORT/``)."""
    handler = type("Handler", (_Handler,), {"isolated": isolated})
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(handler, directory=os.fspath(folder)))
    thread = threading.Thread(target=server.serve_forever, name="web-export-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
