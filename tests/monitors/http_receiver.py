"""A stand-in HTTP receiver on 127.0.0.1 (a Pushgateway, a webhook): records each request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Gateway:
    """A stand-in Pushgateway: records every request, answers `status` with `answer`."""

    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    answer: bytes = b""

    def url(self, userinfo: str = "", query: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}/{query}"


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    """A receiver answering every PUT and POST with `status`."""
    state = Gateway(port=0)

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": self.rfile.read(length).decode(),
                }
            )
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(state.answer)))
            self.end_headers()
            self.wfile.write(state.answer)

        do_PUT = do_POST = _record

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
