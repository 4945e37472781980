"""The `router` node kind (Zooter): its YAML checks, the node running only the chosen expert's own node,
router inference batched across runs, and `fslm finetune router` with every kind of bad input."""

from __future__ import annotations

import gc
import json
import threading
import weakref
from pathlib import Path
from typing import Any

import pytest
from router_tiny import make_tiny_encoder, make_tiny_reward_model
from tiny import make_tiny_adapter, make_tiny_model

from fslm.cli.main import main
from fslm.nodes.router.decision import cost_aware_scores, learned_choice, random_choice
from fslm.pipeline import load_pipeline
from fslm.runtime import Runtime
from fslm.runtime.router import RouteRequest, RouterModel, RouteServer
from fslm.runtime.router.checkpoint import read_router_config

QUESTIONS = [
    "what is two plus two",
    "where do rivers flow",
    "when does water boil",
    "who sat on the mat",
    "why do dogs sleep",
    "how big is paris",
    "which city is in germany",
    "what falls from the clouds",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("router")
    model = make_tiny_model(root / "lm", seed=0)
    data = root / "train.jsonl"
    records = [
        {
            "question": question,
            "choices": ["yes", "no", "maybe"],
            "gold": ["yes", "no"][index % 2],
            "domain": ["even", "odd"][index % 2],
        }
        for index, question in enumerate(QUESTIONS * 2)
    ]
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    return {
        "root": root,
        "lm": model,
        "a": make_tiny_adapter(model, root / "adapter-a", seed=1),
        "b": make_tiny_adapter(model, root / "adapter-b", seed=2),
        "encoder": make_tiny_encoder(root / "encoder"),
        "reward": make_tiny_reward_model(root / "reward"),
        "data": data,
    }


def pipeline_text(world: dict[str, Path], router: str, experts: str = "[one, two]") -> str:
    return f"""
models: {{tiny: {{source: {world["lm"]}, dtype: float32}}}}
inputs: [question, choices]
stages:
  route:
    router: {{experts: {experts}, {router}}}
    prompt: "{{{{ question }}}}"
  one: {{model: tiny, adapter: {world["a"]}, prompt: "Q: {{{{ question }}}}", choices: "{{{{ choices }}}}"}}
  two: {{model: tiny, adapter: {world["b"]}, prompt: "Q: {{{{ question }}}}", choices: "{{{{ choices }}}}"}}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def recipe_text(
    world: dict[str, Path], pipeline: Path, reward: str = "{metric: acc}", extra: str = ""
) -> str:
    return f"""
target: {{pipeline: {pipeline}, stage: route}}
data: {{path: {world["data"]}, answer: gold, tags: {{field: domain}}}}
reward: {reward}
encoder: {{name: {world["encoder"]}, max_length: 32}}
train: {{epochs: 4, held_out: 0.25, batch_size: 4}}
store: {world["root"] / "runs.sqlite"}
output: {world["root"] / "checkpoint"}
{extra}"""


@pytest.fixture(scope="module")
def trained(world: dict[str, Path]) -> Path:
    """A routed pipeline whose router was trained with `fslm finetune router`."""
    pipeline = write(
        world["root"] / "routed.yaml", pipeline_text(world, f"checkpoint: {world['root'] / 'checkpoint'}")
    )
    recipe = write(world["root"] / "recipe.yaml", recipe_text(world, pipeline))
    assert main(["finetune", "router", str(recipe)]) == 0
    return pipeline


@pytest.mark.slow
def test_training_writes_a_checkpoint_for_these_experts(world: dict[str, Path], trained: Path) -> None:
    config = read_router_config(world["root"] / "checkpoint")
    assert config.expert_names == ["one", "two"]
    assert all(len(expert.fingerprint) == 64 and expert.seconds_per_call > 0 for expert in config.experts)
    assert config.training["queries"] == 16 and config.training["held_out"] == 4
    assert 1 <= config.training["best_epoch"] <= 4
    best = min(config.training["epochs"], key=lambda log: log["held_out_kl"])
    assert best["epoch"] == config.training["best_epoch"]
    assert (world["root"] / "checkpoint" / "router.safetensors").stat().st_size < 10_000  # the head alone


def test_a_learned_router_runs_only_the_expert_it_picks(trained: Path) -> None:
    pipeline = load_pipeline(trained, store=":memory:")
    try:
        results = pipeline.batch([{"question": q, "choices": ["yes", "no"]} for q in QUESTIONS])
    finally:
        pipeline.close()
    for result in results:
        expert, router = result.messages
        record = router["router"]
        assert router["stage"] == "route" and expert["stage"] == record["chosen"]
        assert abs(sum(record["probabilities"]) - 1) < 1e-6 and record["calls"] == 1
        assert record["chosen"] == record["experts"][max(range(2), key=record["probabilities"].__getitem__)]
        assert result.output == expert["text"] == router["text"] and "choices" in expert


def test_router_requests_from_concurrent_runs_share_a_batch_and_equal_one_at_a_time(
    world: dict[str, Path], trained: Path
) -> None:
    checkpoint = str(world["root"] / "checkpoint")
    with Runtime({}) as runtime:
        alone = [runtime.serve([RouteRequest(checkpoint, query)])[0] for query in QUESTIONS]
        together: dict[int, Any] = {}

        def submit(index: int) -> None:
            together[index] = runtime.submit(RouteRequest(checkpoint, QUESTIONS[index]))

        threads = [threading.Thread(target=submit, args=(index,)) for index in range(len(QUESTIONS))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert max(runtime.stats.request_batch_sizes["RouteRequest"]) > 1
    for index, single in enumerate(alone):
        batched = together[index].probabilities
        assert all(abs(a - b) < 1e-5 for a, b in zip(single.probabilities, batched, strict=True))


class FakeRouter:
    """Stands in for a loaded router where only its loading and freeing matter."""


@pytest.mark.slow
def test_a_route_server_keeps_the_routers_used_last_and_frees_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    loaded: dict[str, list[weakref.ref]] = {}

    def load(checkpoint: Path) -> tuple[FakeRouter, None]:
        loads.append(checkpoint.name)
        router = FakeRouter()
        loaded.setdefault(checkpoint.name, []).append(weakref.ref(router))
        return router, None

    monkeypatch.setattr(RouterModel, "load", staticmethod(load))
    server = RouteServer(capacity=2)
    for name in ["a", "b", "a", "c", "a"]:  # c loads while a and b are held: b, used longer ago, goes
        server.router(tmp_path / name)
    gc.collect()
    assert loads == ["a", "b", "c"]
    assert loaded["b"][0]() is None  # freed
    assert loaded["a"][0]() is not None and loaded["c"][0]() is not None
    server.router(tmp_path / "b")  # loads again, and c goes
    server.router(tmp_path / "a")
    assert loads == ["a", "b", "c", "b"]
    server.close()
    gc.collect()
    assert all(ref() is None for refs in loaded.values() for ref in refs)


@pytest.mark.slow
def test_each_runtime_loads_its_own_routers_and_frees_them_on_closing(
    world: dict[str, Path], trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = str(world["root"] / "checkpoint")
    loaded: list[weakref.ref] = []
    load = RouterModel.load

    def counted_load(directory: Path) -> tuple[RouterModel, Any]:
        router, config = load(directory)
        loaded.append(weakref.ref(router))
        return router, config

    monkeypatch.setattr(RouterModel, "load", staticmethod(counted_load))
    with Runtime({}) as one, Runtime({}) as two:
        first = [one.serve([RouteRequest(checkpoint, query)])[0] for query in QUESTIONS[:2]]
        assert len(loaded) == 1  # kept for the next request
        second = two.serve([RouteRequest(checkpoint, QUESTIONS[0])])[0]
        assert len(loaded) == 2  # not shared with the other runtime
        assert second.probabilities == first[0].probabilities
    gc.collect()
    assert [ref() for ref in loaded] == [None, None]


@pytest.mark.parametrize(
    ("router", "calls"),
    [("method: random, seed: 3", 1), ("method: fixed, fixed: two", 1), ("method: rank", 2)],
)
def test_baselines(world: dict[str, Path], tmp_path: Path, router: str, calls: int) -> None:
    pipeline = load_pipeline(write(tmp_path / "p.yaml", pipeline_text(world, router)), store=":memory:")
    try:
        results = pipeline.batch([{"question": q, "choices": ["yes", "no"]} for q in QUESTIONS])
    finally:
        pipeline.close()
    for question, result in zip(QUESTIONS, results, strict=True):
        record = result.messages[-1]["router"]
        assert len(result.messages) == calls + 1 and record["calls"] == calls
        if "random" in router:
            assert record["chosen"] == ["one", "two"][random_choice(2, 3, question)]
        if "fixed" in router:
            assert record["chosen"] == "two"
        if "rank" in router:
            confidence = {
                message["stage"]: message["choices"]["probabilities"][message["choices"]["chosen"]]
                for message in result.messages[:-1]
            }
            assert confidence[record["chosen"]] == max(confidence.values())
            assert result.output == next(m["text"] for m in result.messages if m["stage"] == record["chosen"])


def test_runs_show_displays_the_routing(world: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    path = write(tmp_path / "p.yaml", pipeline_text(world, "method: fixed, fixed: one"))
    store = str(tmp_path / "runs.sqlite")
    run_input = json.dumps({"question": "how big is paris", "choices": ["yes", "no"]})
    assert main(["run", str(path), "--input-json", run_input, "--json", "--store", store]) == 0
    run = json.loads(capsys.readouterr().out)
    assert main(["runs", "show", run["run_id"], "--store", store]) == 0
    shown = capsys.readouterr().out
    assert "router: fixed · 1 expert call(s)" in shown
    chosen_row = next(line for line in shown.splitlines() if "✓" in line and "one" in line)
    assert "1.00" in chosen_row
    assert [line for line in shown.splitlines() if "two" in line and "0.00" in line]


def test_the_viewer_shows_the_routing(
    world: dict[str, Path], tmp_path: Path, capsys: Any, browser: Any
) -> None:
    from fslm.store import open_store
    from fslm.ui import make_server, serving
    from fslm.ui.browser import open_view, text_of

    path = write(tmp_path / "p.yaml", pipeline_text(world, "method: fixed, fixed: two"))
    store = tmp_path / "runs.sqlite"
    run_input = json.dumps({"question": "how big is paris", "choices": ["yes", "no"]})
    assert main(["run", str(path), "--input-json", run_input, "--json", "--store", str(store)]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    with serving(make_server(open_store(store, read_only=True), port=0)) as running:
        open_view(browser, f"{running.url}#/run/{run_id}")
        card = "li.message[data-stage='route']"
        assert text_of(browser, f"{card} .record-head")[0].startswith("router: fixed · 1 expert call(s) · ")
        assert text_of(browser, f"{card} td.text:nth-child(2)") == ["one", "two"]
        assert text_of(browser, f"{card} tr.chosen td.text:nth-child(2)") == ["two"]
        assert text_of(browser, f"{card} tbody td.score") == ["0.00", "0.000", "1.00", "1.000"]


def test_cost_weight_trades_probability_for_cheaper_experts() -> None:
    assert learned_choice([0.6, 0.4], [10.0, 1.0], 0.0) == 0
    assert learned_choice([0.6, 0.4], [10.0, 1.0], 0.5) == 1
    assert cost_aware_scores([0.5, 0.5], [2.0, 1.0], 1.0) == [-0.5, 0.0]


@pytest.mark.parametrize(
    ("router", "experts", "message"),
    [
        ("method: random", "[one, tow]", "expert 'tow' is not a stage of the pipeline; did you mean 'two'"),
        ("method: random", "[one, route]", "lists itself among its experts"),
        ("method: learned", "[one, two]", "method 'learned' needs a 'checkpoint'"),
        ("method: fixed, fixed: three", "[one, two]", "needs 'fixed' set to one of the experts"),
        ("method: random", "[one, one]", "experts are listed twice"),
        ("method: random, costs: {one: 0}", "[one, two]", "the cost of 'one' must be greater than 0"),
    ],
)
def test_validate_refuses(
    world: dict[str, Path], tmp_path: Path, capsys: Any, router: str, experts: str, message: str
) -> None:
    path = write(tmp_path / "p.yaml", pipeline_text(world, router, experts))
    assert main(["validate", str(path)]) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


def test_a_checkpoint_for_other_experts_or_changed_adapters_is_refused(
    world: dict[str, Path], trained: Path, tmp_path: Path, capsys: Any
) -> None:
    checkpoint = f"checkpoint: {world['root'] / 'checkpoint'}"
    swapped = write(tmp_path / "swapped.yaml", pipeline_text(world, checkpoint, "[two, one]"))
    assert main(["validate", str(swapped)]) == 2
    assert "trained for the experts [one, two], not [two, one]" in capsys.readouterr().err.replace("\n", " ")
    changed = tmp_path / "changed"
    make_tiny_adapter(world["lm"], changed, seed=7)
    text = pipeline_text(world, checkpoint).replace(str(world["a"]), str(changed))
    assert main(["validate", str(write(tmp_path / "changed.yaml", text))]) == 2
    assert "the adapters of expert(s) 'one' changed" in capsys.readouterr().err.replace("\n", " ")
    missing = pipeline_text(world, f"checkpoint: {tmp_path / 'nowhere'}")
    assert main(["validate", str(write(tmp_path / "missing.yaml", missing))]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_tiny_reward_model_trains_a_router(world: dict[str, Path], trained: Path, tmp_path: Path) -> None:
    output = tmp_path / "by-reward-model"
    text = recipe_text(world, trained, f"{{model: {world['reward']}}}").replace(
        str(world["root"] / "checkpoint"), str(output)
    )
    assert main(["finetune", "router", str(write(tmp_path / "r.yaml", text))]) == 0
    assert read_router_config(output).expert_names == ["one", "two"]


def reward_by_length(query: str, answer: str, reference: object) -> float:
    """An allowlisted reward callable for the test below."""
    return float(len(answer))


@pytest.mark.parametrize(
    ("reward", "message"),
    [
        ("{model: /no/such/reward-model}", "the reward model '/no/such/reward-model' cannot be loaded"),
        ("{callable: 'os:getcwd'}", "which the recipe's reward.allow does not list"),
        ("{metric: bleu}", "reward metric 'bleu' is not an fslm eval metric"),
        ("{metric: acc, model: x}", "give exactly one of 'metric', 'model' and 'callable'"),
    ],
)
def test_bad_rewards_are_refused(
    world: dict[str, Path], trained: Path, tmp_path: Path, capsys: Any, reward: str, message: str
) -> None:
    text = recipe_text(world, trained, reward).replace(
        str(world["root"] / "checkpoint"), str(tmp_path / "out")
    )
    assert main(["finetune", "router", str(write(tmp_path / "r.yaml", text))]) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert not (tmp_path / "out").exists()


def test_an_allowlisted_callable_rewards_and_flat_labels_are_counted(
    world: dict[str, Path], trained: Path, tmp_path: Path, capsys: Any
) -> None:
    reward = "{callable: 'test_router:reward_by_length', allow: [test_router]}"
    text = recipe_text(world, trained, reward).replace(
        str(world["root"] / "checkpoint"), str(tmp_path / "out")
    )
    assert main(["finetune", "router", str(write(tmp_path / "r.yaml", text))]) == 0
    err = capsys.readouterr().err.replace("\n", " ")
    # Both experts pick among the same options: equal lengths give equal rewards on some queries.
    flat = read_router_config(tmp_path / "out").training["flat"]
    assert (f"{flat} of 16 queries gave every expert the same reward" in err) == (flat > 0)


def test_no_usable_training_record_is_refused(
    world: dict[str, Path], trained: Path, tmp_path: Path, capsys: Any
) -> None:
    data = write(tmp_path / "empty.jsonl", json.dumps({"question": "q", "choices": ["a", "b"]}) + "\n")
    text = recipe_text(world, trained).replace(str(world["data"]), str(data))
    text = text.replace(str(world["root"] / "checkpoint"), str(tmp_path / "out"))
    assert main(["finetune", "router", str(write(tmp_path / "r.yaml", text))]) == 2
    assert "no training query is left" in capsys.readouterr().err


def test_experts_templates_are_checked_where_the_router_runs(
    world: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    text = pipeline_text(world, "method: random").replace('"Q: {{ question }}"', '"Q: {{ questoin }}"', 1)
    assert main(["validate", str(write(tmp_path / "p.yaml", text))]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "stage 'one' prompt uses undefined variable 'questoin'" in err and "did you mean 'question'" in err


@pytest.mark.slow
def test_fslm_eval_scores_a_router_by_its_chosen_experts_records_and_breaks_scores_down(
    world: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    from fslm.eval.compare import read_reports
    from fslm.eval.routing import by_chosen_expert
    from fslm.store import open_store
    from fslm.store.inspection import run_details

    pipeline = write(tmp_path / "p.yaml", pipeline_text(world, "method: random, seed: 3"))
    output = tmp_path / "results.jsonl"
    store = str(tmp_path / "runs.sqlite")
    args = ["eval", str(pipeline), "--data", str(world["data"]), "--answer-field", "gold", "--store", store]
    assert main([*args, "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 16 and list(rows[0]["scores"]) == ["acc", "acc_norm"]
    for row in rows:
        chosen = ["one", "two"][random_choice(2, 3, row["input"]["question"])]
        assert row["routed"] == {"route": chosen}
        messages = run_details(open_store(store, read_only=True), row["run_id"]).messages
        record = next(message["choices"] for message in messages if message["stage"] == chosen)
        assert row["scores"]["acc"] == float(record["options"][record["chosen"]] == row["reference"])
    report = read_reports(output)[0]
    breakdown = {(row.expert, row.metric): row for row in by_chosen_expert(report)}
    assert {expert for expert, _ in breakdown} == {"one", "two"}  # seed 3 sends items to both
    for expert in ("one", "two"):
        mine = [row["scores"]["acc"] for row in rows if row["routed"]["route"] == expert]
        assert breakdown[expert, "acc"].items == len(mine)
        assert breakdown[expert, "acc"].mean == sum(mine) / len(mine)
        assert ["route", expert, str(len(mine)), "acc", f"{sum(mine) / len(mine):.3f}"] in table_rows(printed)
    # The results file alone gives the same breakdown.
    assert main(["eval", str(output)]) == 0
    assert [row for row in table_rows(capsys.readouterr().out) if row[0] == "route"] == [
        row for row in table_rows(printed) if row[0] == "route"
    ]


def table_rows(printed: str) -> list[list[str]]:
    """The first five cells of each row of the tables rich printed."""
    return [[cell.strip() for cell in line.split("│")[1:6]] for line in printed.splitlines() if "│" in line]


def test_fslm_eval_refuses_a_results_row_whose_routing_is_not_an_object(tmp_path: Path, capsys: Any) -> None:
    row = {
        "pipeline": "p.yaml",
        "name": "p",
        "metric": "acc",
        "run_id": "r",
        "input": "q",
        "reference": "yes",
        "output": "yes",
        "extracted": "yes",
        "score": 1.0,
        "scores": {"acc": 1.0},
        "routed": "one",
    }
    results = write(tmp_path / "results.jsonl", json.dumps(row) + "\n")
    assert main(["eval", str(results)]) == 2
    assert "its 'routed' is not an object" in capsys.readouterr().err


def test_fslm_eval_needs_a_metric_for_a_router_whose_experts_read_different_options(
    world: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    text = pipeline_text(world, "method: random").replace(
        'choices: "{{ choices }}"}', "choices: [maybe, perhaps]}", 1
    )
    pipeline = write(tmp_path / "p.yaml", text)
    assert main(["eval", str(pipeline), "--data", str(world["data"]), "--answer-field", "gold"]) == 2
    assert "does not end in a choice stage, so give a --metric" in capsys.readouterr().err
    assert not (tmp_path / "p.eval.jsonl").exists()


def test_the_gold_probability_reward_is_the_experts_probability_of_the_gold_option(
    world: dict[str, Path], trained: Path, tmp_path: Path
) -> None:
    from fslm.finetune.router.recipe import RewardSpec
    from fslm.finetune.router.rewards import Answer, make_rewarder

    record = {"options": ["yes", "no", "maybe"], "probabilities": [0.2, 0.7, 0.1], "chosen": 1, "scorers": []}
    message: Any = {"stage": "one", "text": "no", "choices": record}
    reward = make_rewarder(RewardSpec(metric="gold_probability"))
    assert reward([Answer("q", message, "yes"), Answer("q", message, 2)]) == [0.2, 0.1]
    # Both experts pick among the same options, so acc is often equal for both; their probabilities are not.
    text = recipe_text(world, trained, "{metric: gold_probability}", "labels: {temperature: 0.05}")
    text = text.replace(str(world["root"] / "checkpoint"), str(tmp_path / "out"))
    assert main(["finetune", "router", str(write(tmp_path / "r.yaml", text))]) == 0
    training = read_router_config(tmp_path / "out").training
    assert training["flat"] == 0
    assert all(0 < value < 1 for value in training["expert_rewards"].values())


def test_the_gold_probability_reward_needs_choice_experts(tmp_path: Path) -> None:
    from fslm.errors import FslmError
    from fslm.finetune.router.recipe import RewardSpec
    from fslm.finetune.router.rewards import Answer, make_rewarder

    message: Any = {"stage": "writer", "text": "yes"}
    with pytest.raises(FslmError, match="scores choice stages, but expert 'writer' generates text"):
        make_rewarder(RewardSpec(metric="gold_probability"))([Answer("q", message, "yes")])
