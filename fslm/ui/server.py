"""The viewer's HTTP server: the static page and the JSON API, read-only, on the standard library's server."""

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fslm.errors import FslmError
from fslm.store import RunStore
from fslm.ui.api import answer

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# The page is one self-contained file set: nothing may load from elsewhere, nothing may run inline.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class ViewerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: RunStore):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, ViewerHandler)
        self.store = store

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{f'[{host}]' if ':' in str(host) else host}:{port}/"

    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.server_address[0]).is_loopback


class ViewerHandler(BaseHTTPRequestHandler):
    server: ViewerServer

    def do_GET(self) -> None:
        if not self._host_allowed():
            message = {"error": "this viewer answers only requests addressed to localhost or 127.0.0.1"}
            self._send(HTTPStatus.FORBIDDEN, json.dumps(message).encode(), "application/json")
            return
        url = urlsplit(self.path)
        if url.path.startswith("/api/"):
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            status, payload = answer(self.server.store, url.path, query)
            self._send(status, json.dumps(payload, ensure_ascii=False).encode(), "application/json")
            return
        file = static_file(url.path)
        if file is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            return
        self._send(HTTPStatus.OK, file.read_bytes(), CONTENT_TYPES[file.suffix])

    def _host_allowed(self) -> bool:
        """On loopback, answer only requests addressed to a loopback name: another site's page that rebinds its
        own DNS name to 127.0.0.1 must not read the runs."""
        if not self.server.is_loopback():
            return True
        host = urlsplit(f"//{self.headers.get('Host', '')}").hostname or ""
        return host in LOOPBACK_NAMES

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Requests are not logged: the terminal shows the URL and stays quiet."""


def static_file(path: str) -> Path | None:
    """The shipped file a page path names: `/` is the page itself; only files in `static/` are served."""
    name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
    file = STATIC / name
    known = {entry.name for entry in STATIC.iterdir()}
    return file if name in known and file.suffix in CONTENT_TYPES else None


def make_server(store: RunStore, host: str = "127.0.0.1", port: int = 8765) -> ViewerServer:
    """A viewer bound to host:port (port 0: any free port), not yet serving."""
    try:
        return ViewerServer((host, port), store)
    except OSError as error:
        raise FslmError(
            f"cannot serve the viewer on {host}:{port}: {error.strerror or error}. "
            "Another program may be using that port; pick another with --port"
        ) from error


@contextmanager
def serving(server: ViewerServer) -> Iterator[ViewerServer]:
    """Serve in a background thread for the duration of the block, then stop and close the server."""
    thread = threading.Thread(target=server.serve_forever, name="fslm-viewer", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
