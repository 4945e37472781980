"""The viewer trusts no request and changes no file: remote access needs a flag and a token, the Host header
is checked, bad query values are 400, idle connections are cut off, connections and request sizes are
capped, the store is opened read-only, and recorded text reaches the page (and the terminal) as text."""

import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import fslm.ui.server
from fslm.cli.main import main
from fslm.store import RunRecord, open_store
from fslm.ui import make_server, serving
from fslm.ui.browser import headless_chromium, missing_browser, open_view

XSS = "<img src=x onerror=\"document.body.dataset.owned='yes'\">"
MARKUP = "[bold]loud[/] [link=https://example.com]click[/link] [/]"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    """A closed store file holding two runs whose recorded text is HTML and rich markup (no checkpoints)."""
    path = tmp_path_factory.mktemp("viewer-store") / "runs.sqlite"
    store = open_store(path)
    for number, (text, name) in enumerate([(XSS, XSS), (MARKUP, MARKUP)]):
        store.index.start(
            RunRecord(
                run_id=f"run-{number}",
                pipeline=f"/nowhere/{name}.yaml",
                pipeline_name=name,
                pipeline_hash="h",
                input=text,
                status="failed",
                started=1000.0 + number,
            )
        )
        store.index.finish(f"run-{number}", "failed", error=text)
    store.close()
    return path


@pytest.fixture(scope="module")
def server(store_path):
    with serving(make_server(open_store(store_path, read_only=True), port=0, request_timeout=1.0)) as running:
        yield running


def request(server, path: str, token: str | None = "", host: str | None = None) -> tuple[int, bytes]:
    """GET `path` on 127.0.0.1; `token` "" sends the server's own, None sends none."""
    headers = {} if token is None else {"Authorization": f"Bearer {token or server.token}"}
    if host is not None:
        headers["Host"] = host
    port = server.server_address[1]
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
        ) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def error_of(body: bytes) -> str:
    return json.loads(body)["error"]


def no_serving(monkeypatch) -> None:
    """`fslm ui` prints its lines, then stops at once as if Ctrl-C were pressed."""

    def interrupted(server, poll_interval=0.5):
        raise KeyboardInterrupt

    monkeypatch.setattr(fslm.ui.server.ViewerServer, "serve_forever", interrupted)


# ---- who may connect ---------------------------------------------------------------------------------------


def test_a_remote_host_needs_allow_remote(store_path, capsys):
    assert main(["ui", "--store", str(store_path), "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_allow_remote_warns_and_prints_the_token_once(store_path, capsys, monkeypatch):
    no_serving(monkeypatch)
    assert main(["ui", "--store", str(store_path), "--host", "0.0.0.0", "--port", "0", "--allow-remote"]) == 0
    out = capsys.readouterr().out
    assert "warning" in out and "other machines can connect" in out
    assert out.count("?token=") == 1
    assert f"at http://{socket.gethostname().lower()}:" in out  # an address other machines can open


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_the_api_needs_the_token(store_path, host):
    store = open_store(store_path, read_only=True)
    with serving(make_server(store, host, 0, allow_remote=True)) as running:
        assert request(running, "/api/runs", token=None)[0] == 403
        status, body = request(running, "/api/runs", token="wrong")
        assert status == 403 and "access token" in error_of(body)
        assert request(running, "/api/runs", token=running.token + "x")[0] == 403
        assert request(running, "/api/runs")[0] == 200
        assert request(running, "/", token=None)[0] == 200  # the page itself holds no run data


def test_the_token_is_random_per_server(store_path):
    store = open_store(store_path, read_only=True)
    first, second = make_server(store, port=0), make_server(store, port=0)
    try:
        assert first.token != second.token and len(first.token) >= 32
        assert first.url.endswith(f"/?token={first.token}")
    finally:
        first.server_close()
        second.server_close()


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:80", "localhost.attacker.example", "", "[x"]
)
def test_requests_addressed_to_another_name_are_refused(server, host):
    assert request(server, "/api/runs", host=host)[0] == 403
    assert request(server, "/", host=host)[0] == 403


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]:8765", "LOCALHOST:1"])
def test_requests_addressed_to_this_machine_are_answered(server, host):
    assert request(server, "/api/runs", host=host)[0] == 200


def test_a_remote_bind_accepts_this_machines_name_and_addresses_only(store_path):
    server = make_server(open_store(store_path, read_only=True), "0.0.0.0", 0, allow_remote=True)
    try:
        assert server.accepts_host(f"{socket.gethostname()}:8765")
        assert server.accepts_host("192.0.2.7:8765")
        assert not server.accepts_host("attacker.example")
    finally:
        server.server_close()


# ---- what a request may ask --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limit", ["%C2%B2", "-1", "abc", "1" * 20, "10001", "0", "1.5", "%205", "5%0A", "%EF%BC%95"]
)
def test_a_bad_limit_is_400(server, limit):
    status, body = request(server, f"/api/runs?limit={limit}")
    assert status == 400
    assert "limit must be a whole number from 1 to 10000" in error_of(body)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/runs?pipeline=a%00b", 400),
        (f"/api/runs?pipeline={'p' * 5000}", 400),
        ("/api/runs?status=%1b[31m", 400),
        ("/api/runs/run%000", 404),
        ("/api/runs/%FF%FE", 404),
        ("/api/runs/%25", 404),
        ("/api/runs/run-%5F", 404),
        ("/api/runs/'%22%3Cscript%3E", 404),
        (f"/api/runs/{'r' * 5000}", 404),
        ("/api/runs/run%000/graph", 404),
        ("/api/diff?a=run-0&b=%00", 404),
        ("/api/diff?a=run-0", 400),
    ],
)
def test_odd_query_values_are_a_client_error(server, path, status):
    answered, body = request(server, path)
    assert answered == status
    assert error_of(body)


def test_a_bug_is_a_500_and_a_traceback_in_the_terminal(server, monkeypatch, capfd):
    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(fslm.ui.server, "answer", broken)
    status, body = request(server, "/api/runs")
    assert status == 500 and "the viewer failed" in error_of(body)
    printed, deadline = "", time.monotonic() + 5  # the handler thread prints after it has answered
    while "RuntimeError: a bug" not in printed and time.monotonic() < deadline:
        time.sleep(0.05)
        printed += capfd.readouterr().err
    assert "RuntimeError: a bug" in printed


@pytest.mark.slow
def test_an_idle_connection_is_closed_after_the_timeout(server):
    with socket.create_connection(server.server_address[:2], timeout=10) as idle:
        assert request(server, "/api/runs")[0] == 200  # the idle client holds one thread, not the server
        started = time.monotonic()
        assert idle.recv(1) == b""
        assert time.monotonic() - started < 9


# ---- the store is only read --------------------------------------------------------------------------------


def test_connections_past_the_cap_are_answered_503_until_one_closes(store_path):
    store = open_store(store_path, read_only=True)
    with serving(make_server(store, port=0, request_timeout=10.0, max_connections=2)) as running:
        address = running.server_address[:2]
        idle = [socket.create_connection(address, timeout=10) for _ in range(2)]
        try:
            with socket.create_connection(address, timeout=10) as third:
                reply = third.recv(4096)
            assert reply.startswith(b"HTTP/1.0 503 ")
            assert b"try again" in reply
            idle.pop().close()
            deadline = time.monotonic() + 5  # the closed connection's thread frees its slot as it ends
            while request(running, "/api/runs")[0] != 200:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            for connection in idle:
                connection.close()


def raw_request(server, data: bytes) -> bytes:
    with socket.create_connection(server.server_address[:2], timeout=10) as connection:
        connection.sendall(data)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    return reply


def test_a_request_larger_than_16_kib_is_431(server):
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (index, b"x" * 1000) for index in range(20))
    reply = raw_request(server, b"GET /api/runs HTTP/1.1\r\nHost: localhost\r\n" + headers + b"\r\n")
    assert reply.startswith(b"HTTP/1.0 431 ")
    assert b"exceed 16 KiB" in reply
    assert raw_request(server, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").startswith(b"HTTP/1.0 200 ")


def test_the_viewer_leaves_the_store_file_as_it_was(store_path, monkeypatch, capsys):
    before = {file.name: file.read_bytes() for file in store_path.parent.iterdir()}
    with serving(make_server(open_store(store_path, read_only=True), port=0)) as running:
        for path in ("/api/runs", "/api/runs/run-0", "/api/runs/run-0/graph", "/api/diff?a=run-0&b=run-1"):
            assert request(running, path)[0] == 200
    no_serving(monkeypatch)
    assert main(["ui", "--store", str(store_path), "--port", "0"]) == 0
    assert {file.name: file.read_bytes() for file in store_path.parent.iterdir()} == before


def test_a_missing_store_is_exit_2_and_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "typo" / "runs.sqlite"
    assert main(["ui", "--store", str(missing), "--port", "0"]) == 2
    assert capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# ---- recorded text stays text ------------------------------------------------------------------------------


def test_the_terminal_prints_a_store_path_with_markup_as_it_is(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "[bold]runs[red]"
    folder.mkdir()
    open_store(folder / "runs.sqlite").close()
    no_serving(monkeypatch)
    assert main(["ui", "--store", str(folder / "runs.sqlite"), "--port", "0"]) == 0
    assert f"viewing runs of {folder / 'runs.sqlite'} at http://" in capsys.readouterr().out


def test_the_api_returns_recorded_markup_unchanged(server):
    run = json.loads(request(server, "/api/runs/run-0")[1])
    assert (run["input"], run["pipeline_name"], run["error"]) == (XSS, XSS, XSS)


@pytest.fixture
def browser(tmp_path):
    reason = missing_browser()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(f"no headless browser: {reason}")
    driver = headless_chromium(tmp_path / "chromium-profile")
    yield driver
    driver.quit()


def test_the_page_shows_recorded_html_as_text(browser, server):
    open_view(browser, f"{server.url}#/run/run-0")
    shown = [
        element.get_attribute("textContent")
        for element in browser.find_elements("css selector", ".input pre")
    ]
    assert shown == [XSS]
    assert XSS in browser.find_element("css selector", "#view .error").get_attribute("textContent")
    assert browser.find_elements("css selector", "img") == []
    assert browser.execute_script("return document.body.dataset.owned") is None


def test_the_page_without_its_token_says_how_to_get_in(browser, server):
    open_view(browser, server.url.split("?")[0] + "#/run/run-0")
    assert "access token" in browser.find_element("css selector", "#view .error").get_attribute("textContent")
