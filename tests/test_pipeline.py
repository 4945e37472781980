"""Pipelines on tiny random models: shared bases, adapters, batching, embedding as a subgraph."""

from pathlib import Path

import pytest
from langgraph.graph import END, START, StateGraph

from fslm.graph import RunState
from fslm.pipeline import load_pipeline


def four_stage_yaml(model: Path, adapters: list[Path | None]) -> str:
    lines = ["models:", f"  m: {{source: {model}, dtype: float32}}", "stages:"]
    for index, adapter in enumerate(adapters):
        lines += [
            f"  s{index}:",
            "    model: m",
            f"    prompt: 'step {index}: {{{{ input }}}}'",
            "    generation: {max_new_tokens: 12}",
        ]
        if adapter is not None:
            lines.append(f"    adapter: {adapter}")
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_four_stages_load_their_base_once(tmp_path, tiny_model, tiny_adapters):
    a, b = tiny_adapters
    path = tmp_path / "four.yaml"
    path.write_text(four_stage_yaml(tiny_model, [a, b, None, a]))
    pipeline = load_pipeline(path, store=":memory:")
    result = pipeline.invoke("hello there")
    assert [m["stage"] for m in result.messages] == ["s0", "s1", "s2", "s3"]
    assert [m["adapter"] for m in result.messages] == [str(a), str(b), None, str(a)]
    assert pipeline.runtime.stats.base_loads == 1


def test_two_adapters_give_different_outputs(tmp_path, tiny_model, tiny_adapters):
    path = tmp_path / "two.yaml"
    path.write_text(
        f"""models:
  m: {{source: {tiny_model}, dtype: float32}}
stages:
  with_a: {{model: m, adapter: {tiny_adapters[0]}, prompt: "{{{{ input }}}}", \
generation: {{max_new_tokens: 16}}}}
  with_b: {{model: m, adapter: {tiny_adapters[1]}, prompt: "{{{{ input }}}}", \
generation: {{max_new_tokens: 16}}}}
"""
    )
    result = load_pipeline(path, store=":memory:").invoke("the cat sat on the mat")
    first, second = (m["text"] for m in result.messages)
    assert first != second


@pytest.mark.slow
def test_batched_pipeline_equals_one_at_a_time(tmp_path, tiny_model, tiny_adapters):
    path = tmp_path / "chain.yaml"
    path.write_text(four_stage_yaml(tiny_model, [tiny_adapters[0], None, tiny_adapters[1]]))
    pipeline = load_pipeline(path, store=":memory:")
    texts = ["a", "the quick brown fox jumps over the lazy dog", "hello", "one two three four five six"]
    alone = [pipeline.invoke(text) for text in texts]
    batches_before = pipeline.runtime.stats.batches
    together = pipeline.batch(texts)
    assert [[m["text"] for m in r.messages] for r in together] == [
        [m["text"] for m in r.messages] for r in alone
    ]
    # Three stages for four inputs: the concurrent runs shared batches instead of taking 12.
    assert pipeline.runtime.stats.batches - batches_before < 3 * len(texts)


def test_compiled_graph_embeds_as_a_subgraph(tmp_path, tiny_model):
    path = tmp_path / "one.yaml"
    path.write_text(four_stage_yaml(tiny_model, [None, None]))
    inner = load_pipeline(path, store=":memory:")
    builder = StateGraph(RunState)
    builder.add_node("inner", inner.graph)
    builder.add_edge(START, "inner")
    builder.add_edge("inner", END)
    state = builder.compile().invoke({"input": "hi", "outputs": {}, "log": []})
    assert list(state["outputs"]) == ["s0", "s1"]
    assert state["outputs"]["s1"] == inner.invoke("hi").output
