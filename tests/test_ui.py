"""The run viewer: its JSON API over HTTP, the graph layout, `fslm ui`, and the page in a real headless
Chromium."""

import http.client
import json
import socket
import struct
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fslm.cli.main import main
from fslm.nodes.stage.record import logprobs_table
from fslm.pipeline import load_pipeline
from fslm.spec import END, load_spec
from fslm.store import RunRecord, open_store
from fslm.store.inspection import diff_runs, run_details
from fslm.ui import make_server, serving
from fslm.ui.browser import open_view, save_screenshot, text_of
from fslm.ui.pipeline_layout import layered_graph, run_graph

# The replayed run's first stage is edited to this: its label routes to `third`, and it is markup to escape.
EDITED_FIRST = "hello <b id='injected'>bold</b> & more"


@pytest.fixture(scope="module")
def pipeline_file(tmp_path_factory, tiny_model) -> Path:
    path = tmp_path_factory.mktemp("viewer") / "routed.yaml"
    path.write_text(
        f"""models:
  m: {{source: {tiny_model}, dtype: float32}}
stages:
  first: {{model: m, prompt: "one {{{{ input }}}}", generation: {{max_new_tokens: 8}}}}
  second: {{model: m, prompt: "two {{{{ first }}}}", generation: {{max_new_tokens: 8}}}}
  third: {{model: m, prompt: "three {{{{ first }}}}", generation: {{max_new_tokens: 8}}}}
edges:
  - from: first
    when:
      - {{regex: "[aeiou]{{3}}", to: second}}
      - {{label: hello, to: third}}
    otherwise: third
"""
    )
    return path


@pytest.fixture(scope="module")
def runs(pipeline_file) -> dict[str, str]:
    """Three recorded runs: two inputs, and a replay of the first with its first stage edited."""
    store_path = pipeline_file.parent / "runs.sqlite"
    pipeline = load_pipeline(pipeline_file, store=store_path)
    try:
        first, second = pipeline.batch(["<i>why</i> is the sky blue?", "how do tides work?"])
        replay = pipeline.replay(first.run_id, "first", edits={"first": EDITED_FIRST})
    finally:
        pipeline.close()
    return {"store": str(store_path), "a": first.run_id, "b": second.run_id, "replay": replay.run_id}


@pytest.fixture(scope="module")
def store(runs):
    return open_store(runs["store"])


@pytest.fixture(scope="module")
def server(store):
    with serving(make_server(store, port=0)) as running:
        yield running


def get_json(server, path: str, headers: dict | None = None) -> tuple[int, dict]:
    """GET an API path with the server's access token (and any other `headers`): the status and the JSON."""
    host, port = server.server_address[:2]
    headers = {"Authorization": f"Bearer {server.token}", **(headers or {})}
    request = urllib.request.Request(f"http://{host}:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


# ---- the JSON API ------------------------------------------------------------------------------------------


def test_api_lists_runs_with_filters(server, runs):
    status, body = get_json(server, "/api/runs")
    assert status == 200
    assert {run["run_id"] for run in body["runs"]} == {runs["a"], runs["b"], runs["replay"]}
    assert get_json(server, "/api/runs?status=failed")[1]["runs"] == []
    assert len(get_json(server, "/api/runs?pipeline=routed&limit=2")[1]["runs"]) == 2
    assert get_json(server, "/api/runs?pipeline=other")[1]["runs"] == []


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/runs?status=finished", 400, "unknown status 'finished'"),
        ("/api/runs?limit=many", 400, "limit must be a whole number"),
        ("/api/runs/nosuchrun", 404, "no run 'nosuchrun'"),
        ("/api/runs/nosuchrun/graph", 404, "no run 'nosuchrun'"),
        ("/api/diff?a=nosuchrun&b=other", 404, "no run 'nosuchrun'"),
        ("/api/diff?a=x", 400, "needs two run ids"),
        ("/api/nothing", 404, "no API endpoint"),
    ],
)
def test_api_errors_say_what_is_wrong(server, path, status, message):
    answered, body = get_json(server, path)
    assert answered == status
    assert message in body["error"]


def test_api_run_and_diff_match_the_store(server, store, runs):
    # The store's record of the run, each message with the tables of its kind's records: here each
    # generating stage's token log-probabilities.
    expected = json.loads(json.dumps(run_details(store, runs["replay"]).to_dict()))
    for message in expected["messages"]:
        message["tables"] = [logprobs_table(message["logprobs"]).as_json()] if "logprobs" in message else []
    assert any(message["tables"] for message in expected["messages"])
    assert get_json(server, f"/api/runs/{runs['replay']}")[1] == expected
    _, body = get_json(server, f"/api/diff?a={runs['a']}&b={runs['replay']}")
    expected = diff_runs(store, runs["a"], runs["replay"])[2]
    assert [(s["stage"], s["a"], s["b"], s["same"]) for s in body["stages"]] == [
        (s.stage, s.a, s.b, s.same) for s in expected
    ]


def test_api_reports_a_store_it_cannot_read(tmp_path):
    broken = open_store(tmp_path / "runs.sqlite")
    broken.index.connection.execute("DROP TABLE fslm_runs")
    with serving(make_server(broken, port=0)) as running:
        status, body = get_json(running, "/api/runs")
    assert status == 500
    assert "cannot be used (no such table: fslm_runs)" in body["error"]


def test_only_loopback_hosts_and_shipped_files_are_served(server):
    assert get_json(server, "/api/runs", headers={"Host": "attacker.example:80"})[0] == 403
    connection = http.client.HTTPConnection(*server.server_address[:2])
    connection.request("GET", "/static/../server.py")
    assert connection.getresponse().status == 404
    connection.close()


# ---- the graph ---------------------------------------------------------------------------------------------


def test_graph_layers_stages_by_distance_from_the_entry(tmp_path, tiny_model):
    path = tmp_path / "loop.yaml"
    path.write_text(
        f"""models:
  m: {{source: {tiny_model}}}
stages:
  draft: {{model: m, prompt: "{{{{ input }}}}"}}
  check: {{model: m, prompt: "{{{{ draft }}}}"}}
  left: {{model: m, prompt: "{{{{ check }}}}"}}
  right: {{model: m, prompt: "{{{{ check }}}}"}}
  join: {{model: m, prompt: "{{{{ left }}}} {{{{ right }}}}"}}
edges:
  - {{from: draft, to: check}}
  - from: check
    when: [{{label: again, to: draft}}, {{regex: "^ok", to: left}}, {{label: fine, to: left}}]
    otherwise: END
  - {{from: left, to: right}}
  - {{from: [left, right], to: join}}
"""
    )
    graph = layered_graph(load_spec(path))
    assert {node.name: node.layer for node in graph.nodes} == {
        "draft": 0,
        "check": 1,
        "left": 2,
        "right": 3,
        "join": 3,
        END: 4,
    }
    conditional = {(e.source, e.target): e.label for e in graph.edges if e.conditional}
    assert conditional == {
        ("check", "draft"): "again",
        ("check", "left"): "/^ok/ | fine",
        ("check", END): "otherwise",
    }
    assert ("right", "join", False) in {(e.source, e.target, e.conditional) for e in graph.edges}


def test_graph_says_when_the_pipeline_changed_or_is_gone(pipeline_file, tmp_path):
    spec = load_spec(pipeline_file)
    record = RunRecord(
        run_id="r",
        pipeline=str(pipeline_file),
        pipeline_name="routed",
        pipeline_hash=spec.source_hash,
        input="",
        status="done",
        started=0.0,
    )
    assert run_graph(record).available and run_graph(record).note == ""
    changed = run_graph(RunRecord(**{**record.to_dict(), "pipeline_hash": "older"}))
    assert changed.available and "changed since this run" in changed.note
    gone = run_graph(RunRecord(**{**record.to_dict(), "pipeline": str(tmp_path / "deleted.yaml")}))
    assert not gone.available and "no longer exists" in gone.note


# ---- fslm ui -----------------------------------------------------------------------------------------------


def test_ui_exits_2_on_a_store_that_is_not_one(tmp_path, capsys):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("these are my notes, not a database")
    assert main(["ui", "--store", str(bad), "--port", "0"]) == 2
    assert "not an fslm run store" in capsys.readouterr().err


def test_ui_exits_2_when_the_port_is_taken(tmp_path, capsys):
    open_store(tmp_path / "runs.sqlite").close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--store", str(tmp_path / "runs.sqlite"), "--port", str(port)]) == 2
    assert f"cannot serve the viewer on 127.0.0.1:{port}" in capsys.readouterr().err


# ---- the page in a browser ---------------------------------------------------------------------------------


def test_run_page_shows_every_stage_message_escaped(browser, server, store, runs):
    open_view(browser, f"{server.url}#/run/{runs['replay']}")
    details = run_details(store, runs["replay"])
    assert details.messages[0]["text"] == EDITED_FIRST
    for message in details.messages:
        card = f"li.message[data-stage='{message['stage']}']"
        assert text_of(browser, f"{card} pre.text") == [message["text"]]
        assert text_of(browser, f"{card} details.prompt pre") == [message["prompt"]]
    assert not browser.find_element("css selector", "details.prompt").get_property("open")
    assert text_of(browser, "li.message.edited .stage-name") == ["first"]
    assert browser.find_elements("css selector", "#injected") == []
    assert text_of(browser, ".input pre.text") == ["<i>why</i> is the sky blue?"]
    parent = browser.find_element("css selector", ".facts a.run-id")
    assert parent.get_attribute("href").endswith(f"#/run/{runs['a']}")
    listed = [
        item.get_attribute("data-run") for item in browser.find_elements("css selector", "#runs li.run")
    ]
    assert sorted(listed) == sorted([runs["a"], runs["b"], runs["replay"]])


def test_graph_svg_has_a_node_per_stage_and_dashed_conditions(browser, server, store, runs):
    open_view(browser, f"{server.url}#/run/{runs['replay']}")
    nodes = browser.find_elements("css selector", "svg.pipeline-graph g.node.stage")
    assert [node.get_attribute("data-stage") for node in nodes] == ["first", "second", "third"]
    ran = {message["stage"] for message in run_details(store, runs["replay"]).messages}
    assert {node.get_attribute("data-stage") for node in nodes if "ran" in node.get_attribute("class")} == ran
    dashed = browser.find_elements("css selector", "svg.pipeline-graph g.edge.conditional path")
    assert len(dashed) == 2
    assert all(path.value_of_css_property("stroke-dasharray") != "none" for path in dashed)
    labels = text_of(browser, "svg.pipeline-graph g.edge.conditional text")
    assert sorted(labels) == ["/[aeiou]{3}/", "hello | otherwise"]


def test_diff_view_shows_both_runs_side_by_side(browser, server, store, runs):
    open_view(browser, f"{server.url}#/diff/{runs['a']}/{runs['b']}")
    _, _, stages = diff_runs(store, runs["a"], runs["b"])
    for stage in stages:
        row = f"table.diff tr[data-stage='{stage.stage}']"
        cells = text_of(browser, f"{row} td")
        assert cells == [
            stage.a if stage.a is not None else "did not run",
            stage.b if stage.b is not None else "did not run",
        ]
        classes = browser.find_element("css selector", row).get_attribute("class")
        assert classes == ("same" if stage.same else "differs")


def test_unknown_run_in_the_url_says_so(browser, server):
    open_view(browser, f"{server.url}#/run/nosuchrun")
    assert "no run 'nosuchrun' in this store" in text_of(browser, "#view .error")[0]


def test_screenshot_is_a_png_of_the_whole_page(browser, server, runs, tmp_path):
    png = save_screenshot(browser, f"{server.url}#/run/{runs['a']}", tmp_path / "shots" / "run.png")
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    size = list(struct.unpack(">II", header[16:24]))
    assert size == browser.execute_script(
        "return [document.documentElement.clientWidth, document.documentElement.scrollHeight]"
    )


def test_a_choices_stage_shows_its_options_table_from_its_kind(browser, tmp_path, tiny_model):
    path = tmp_path / "pick.yaml"
    path.write_text(
        f"models:\n  m: {{source: {tiny_model}, dtype: float32}}\n"
        'stages:\n  pick: {model: m, prompt: "Is <b>it</b> so? {{ input }}", choices: ["yes <i>", "no"]}\n'
    )
    pipeline = load_pipeline(path, store=tmp_path / "runs.sqlite")
    try:
        result = pipeline.invoke("well?")
    finally:
        pipeline.close()
    record = result.messages[0]["choices"]
    with serving(make_server(open_store(tmp_path / "runs.sqlite"), port=0)) as running:
        open_view(browser, f"{running.url}#/run/{result.run_id}")
        assert text_of(browser, "table.record-table th") == ["", "option", "log P", "tokens", "m token", "p"]
        assert text_of(browser, "table.record-table td:nth-child(2)") == ["yes <i>", "no"]
        chosen = [record["options"][record["chosen"]]]
        assert text_of(browser, "table.record-table tr.chosen td:nth-child(2)") == chosen
        probabilities = [f"{p:.2f}" for p in record["probabilities"]]
        assert text_of(browser, "table.record-table tbody td.score:last-child") == probabilities
