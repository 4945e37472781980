"""The viewer's HTTP server: the static page and the JSON API, read-only, on the standard library's server.

Every API request must carry the server's access token (`Authorization: Bearer TOKEN`). The page reads it
from the `?token=` of the address it was opened at, `server.url`; the static files hold no run data and are
served without it. Every request, static or not, must name this server in its Host header.
"""

import hmac
import ipaddress
import json
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
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
# A client that connects and then sends nothing (or stops mid-request) is cut off after this many seconds.
REQUEST_TIMEOUT_SECONDS = 30.0
# Connections served at once (a thread each); one more is answered 503 and closed.
MAX_CONNECTIONS = 32
# The request line and headers together: the viewer's own are a few hundred bytes (a body is never read).
MAX_REQUEST_BYTES = 16 * 1024
WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


class ViewerServer(ThreadingHTTPServer):
    daemon_threads = True
    server_address: tuple[str, int] | tuple[str, int, int, int]  # IPv4 or IPv6: the host is text

    def __init__(
        self,
        address: tuple[str, int],
        store: RunStore,
        token: str,
        request_timeout: float,
        max_connections: int,
    ):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, ViewerHandler)
        self.store = store
        self.token = token
        self.request_timeout = request_timeout
        self.connection_slots = threading.BoundedSemaphore(max_connections)
        self.host_names = accepted_host_names(address[0])

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread of its own while a slot is free; else answer 503 and close."""
        if not self.connection_slots.acquire(blocking=False):
            try:
                request.settimeout(1)
                request.sendall(BUSY_RESPONSE)
            except OSError:
                pass  # the client left already
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connection_slots.release()

    @property
    def url(self) -> str:
        """The page's address, with the access token the page passes on to the API. On every interface
        (0.0.0.0, ::) it names this machine by its host name, which other machines can use too."""
        host, port = self.server_address[:2]
        host = socket.gethostname().lower() if host in WILDCARD_HOSTS else host
        return f"http://{f'[{host}]' if ':' in str(host) else host}:{port}/?token={self.token}"

    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.server_address[0]).is_loopback

    def accepts_host(self, header: str) -> bool:
        """Whether a request's Host header names this server. A page of another site that points its own DNS
        name at this machine sends that name, so it is refused (DNS rebinding). An IP address cannot be
        rebound."""
        try:
            host = urlsplit(f"//{header}").hostname or ""
        except ValueError:
            return False
        return host in self.host_names or is_ip_address(host)

    def token_matches(self, authorization: str) -> bool:
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())


class ViewerHandler(BaseHTTPRequestHandler):
    server: ViewerServer
    rfile: Any  # a _BoundedReader once set up

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)
        self.rfile = _BoundedReader(self.rfile, MAX_REQUEST_BYTES)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.rfile.exhausted:
            self.close_connection = True
            self._send_json(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                {"error": f"the request line and headers exceed {MAX_REQUEST_BYTES // 1024} KiB"},
            )
            return False
        return True

    def do_GET(self) -> None:
        try:
            status, body, content_type = self._reply()
        except Exception:
            # A bug: the client hears of it, and the traceback still reaches the terminal running the viewer.
            self._send_json(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"error": "the viewer failed on this request; the terminal running it shows why"},
            )
            raise
        self._send(status, body, content_type)

    def _reply(self) -> tuple[HTTPStatus, bytes, str]:
        if not self.server.accepts_host(self.headers.get("Host", "")):
            names = " or ".join(sorted(self.server.host_names))
            return json_reply(
                HTTPStatus.FORBIDDEN,
                f"this viewer answers only requests addressed to {names} or to an IP address of this machine",
            )
        url = urlsplit(self.path)
        if url.path.startswith("/api/"):
            if not self.server.token_matches(self.headers.get("Authorization", "")):
                return json_reply(
                    HTTPStatus.FORBIDDEN,
                    "this viewer needs its access token: open the address "
                    "`fslm ui` printed (it ends in ?token=…); API clients send the header "
                    "'Authorization: Bearer TOKEN'",
                )
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            status, payload = answer(self.server.store, url.path, query)
            return status, json.dumps(payload, ensure_ascii=False).encode(), "application/json"
        file = static_file(url.path)
        if file is None:
            return HTTPStatus.NOT_FOUND, b"not found", "text/plain"
        return HTTPStatus.OK, file.read_bytes(), CONTENT_TYPES[file.suffix]

    def _send_json(self, status: HTTPStatus, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

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


class _BoundedReader:
    """A request's bytes up to `limit`; past it a read returns nothing, as at the end of the stream, so the
    standard library's header parser stops there."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream = stream
        self.left = limit

    @property
    def exhausted(self) -> bool:
        return self.left <= 0

    def readline(self, size: int = -1) -> bytes:
        line = self.stream.readline(self.left if size < 0 else min(size, self.left)) if self.left > 0 else b""
        self.left -= len(line)
        return line

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(self.left if size < 0 else min(size, self.left)) if self.left > 0 else b""
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.stream.close()


def _busy_response() -> bytes:
    body = json.dumps({"error": "the viewer is serving as many connections as it takes; try again"}).encode()
    head = (
        "HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


BUSY_RESPONSE = _busy_response()


def json_reply(status: HTTPStatus, error: str) -> tuple[HTTPStatus, bytes, str]:
    return status, json.dumps({"error": error}).encode(), "application/json"


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def accepted_host_names(bound_host: str) -> set[str]:
    """The names a request may address this server by, besides its IP addresses."""
    names = {"localhost"}
    if bound_host in WILDCARD_HOSTS:
        names.add(socket.gethostname().lower())
    elif not is_ip_address(bound_host):
        names.add(bound_host.lower())
    return names


def static_file(path: str) -> Path | None:
    """The shipped file a page path names: `/` is the page itself; only files in `static/` are served."""
    name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
    file = STATIC / name
    known = {entry.name for entry in STATIC.iterdir()}
    return file if name in known and file.suffix in CONTENT_TYPES else None


def make_server(
    store: RunStore,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    allow_remote: bool = False,
    token: str | None = None,
    request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    max_connections: int = MAX_CONNECTIONS,
) -> ViewerServer:
    """A viewer bound to host:port (port 0: any free port), not yet serving.

    An address other machines can reach is refused unless `allow_remote`. `token` (default: a new random one)
    is what API requests must carry; `server.url` includes it. At most `max_connections` are served at once.
    """
    try:
        server = ViewerServer(
            (host, port), store, token or secrets.token_urlsafe(32), request_timeout, max_connections
        )
    except OSError as error:
        raise FslmError(
            f"cannot serve the viewer on {host}:{port}: {error.strerror or error}. "
            "Another program may be using that port; pick another with --port"
        ) from error
    if not server.is_loopback() and not allow_remote:
        server.server_close()
        raise FslmError(
            f"--host {host} would let other machines connect to the viewer and read every recorded run. "
            "Add --allow-remote if that is what you want (requests then need the access token printed at "
            "start), or leave out --host to serve this machine only"
        )
    return server


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
