"""Fine-tuning a stage on the tiny random model: ids that match inference, the loss, output, resume,
attach."""

import json
import os
import signal
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from fslm.errors import FslmError
from fslm.finetune import Callbacks, finetune, load_recipe, shorthand_recipe
from fslm.finetune.attach import attach_adapter
from fslm.finetune.batching import collate, length_batches
from fslm.finetune.encode import StageEncoder
from fslm.finetune.model import completion_loss, with_new_adapter
from fslm.finetune.recipe import LoraSpec, TrainSpec
from fslm.finetune.reference import generated_files as reference_files
from fslm.finetune.sources import Example
from fslm.finetune.train import Interrupted, total_steps
from fslm.pipeline import load_pipeline
from fslm.spec import load_spec

PIPELINE = """# the pipeline's own comment
models:
  m: {{source: {model}, dtype: float32}}
stages:
  first: {{model: m, prompt: "one {{{{ input }}}}", generation: {{max_new_tokens: 4}}}}
  second:
    model: m   # stays on this line
    system: Be brief.
    prompt: "two {{{{ first }}}} for {{{{ input }}}}"
    generation: {{max_new_tokens: 4}}
"""


@pytest.fixture
def pipeline_file(tmp_path, tiny_model) -> Path:
    path = tmp_path / "two.yaml"
    path.write_text(PIPELINE.format(model=tiny_model))
    return path


@pytest.fixture
def data_file(tmp_path) -> Path:
    rows = [
        {"input": f"the cat {i}", "first": f"the dog {i % 4}", "target": f"water boils {i % 3}"}
        for i in range(24)
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def quick(pipeline: Path, data: Path, output: Path, **train):
    settings = {"max_steps": 4, "batch_size": 4, "checkpoint_every": 2, **train}
    return shorthand_recipe(pipeline, "second", data, output, {"train": settings, "lora": {"r": 4}})


def test_training_prompt_ids_are_the_ids_the_stage_sees_at_inference(pipeline_file, tiny_model, monkeypatch):
    from fslm.runtime import engine

    seen: list[list[int]] = []
    original = engine.encode_prompt

    def spy(tokenizer, request):
        text, ids = original(tokenizer, request)
        seen.append(ids)
        return text, ids

    monkeypatch.setattr(engine, "encode_prompt", spy)
    pipeline = load_pipeline(pipeline_file, store=":memory:")
    result = pipeline.invoke("the cat sat")
    pipeline.close()
    spec = load_spec(pipeline_file)
    encoder = StageEncoder("second", spec.stages["second"], AutoTokenizer.from_pretrained(tiny_model))
    first_text = result.messages[0]["text"]
    trained = encoder.prompt_ids({"input": "the cat sat", "first": first_text})
    assert trained == seen[-1]
    assert encoder.prompt_ids({"input": "the cat sat", "first": first_text + "x"}) != seen[-1]


def test_prompt_and_completion_tokenize_as_one_text(tiny_model, pipeline_file):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    encoder = StageEncoder("second", load_spec(pipeline_file).stages["second"], tokenizer)
    encoded = encoder.encode(Example({"input": "the cat", "first": "a dog"}, "  Water boils at sea level. "))
    prompt_text = tokenizer.decode(encoded.prompt_ids)
    joint = tokenizer(prompt_text + "Water boils at sea level.", add_special_tokens=False)["input_ids"]
    assert encoded.ids[:-1] == joint
    assert encoded.completion_ids[-1] == tokenizer.eos_token_id


def test_loss_covers_completion_tokens_only_and_matches_the_full_model_loss(tiny_model, pipeline_file):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    encoder = StageEncoder("second", load_spec(pipeline_file).stages["second"], tokenizer)
    examples = [
        encoder.encode(Example({"input": f"the cat {'x ' * i}", "first": "a dog"}, "water " * (i + 1)))
        for i in range(3)
    ]
    batch = collate(examples, tokenizer.pad_token_id)
    assert batch.labels.numel() == sum(len(example.completion_ids) for example in examples)

    model = with_new_adapter(AutoModelForCausalLM.from_pretrained(tiny_model), LoraSpec(r=4), seed=0)
    model.eval()
    loss, count = completion_loss(model, batch)
    labels = torch.full_like(batch.input_ids, -100)
    for row, example in enumerate(examples):
        labels[row, len(example.prompt_ids) : len(example)] = torch.tensor(example.completion_ids)
    reference = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels).loss
    assert count == int((labels != -100).sum())
    assert torch.allclose(loss / count, reference, atol=1e-5)


@pytest.mark.parametrize(
    ("train", "steps"),
    [
        ({}, 10),  # one epoch of 10 steps by default
        ({"max_steps": 25}, 25),  # max_steps alone is not capped at one epoch
        ({"max_steps": 25, "epochs": 1}, 10),  # with both, whichever comes first
        ({"max_steps": 4}, 4),
        ({"epochs": 2.5}, 25),
    ],
)
def test_max_steps_alone_sets_the_length_of_training(train, steps):
    assert total_steps(80, TrainSpec(batch_size=8, **train)) == steps


def test_length_batches_group_similar_lengths_and_cover_every_example():
    lengths = [5, 50, 6, 51, 7, 52, 8, 53]
    batches = length_batches(lengths, batch_size=4, seed=3)
    assert sorted(index for batch in batches for index in batch) == list(range(8))
    assert sorted(sorted(lengths[i] for i in batch) for batch in batches) == [[5, 6, 7, 8], [50, 51, 52, 53]]


@pytest.mark.slow
def test_finetune_writes_a_loadable_safetensors_adapter_and_a_training_record(
    pipeline_file, data_file, tmp_path, tiny_model
):
    from peft import PeftModel

    steps = []
    result = finetune(
        quick(pipeline_file, data_file, tmp_path / "adapter"), callbacks=Callbacks(on_step=steps.append)
    )
    files = sorted(path.name for path in result.output.iterdir())
    assert files == ["adapter_config.json", "adapter_model.safetensors", "fslm_base.json", "training.json"]
    record = json.loads((result.output / "training.json").read_text())
    assert [entry["step"] for entry in record["steps"]] == [1, 2, 3, 4] == [log.step for log in steps]
    assert [entry["step"] for entry in record["eval_loss"]] == [0, 4]
    assert record["examples"] == {"train": 22, "eval": 2, "too_long": 0}
    assert len(record["data_hash"]) == 64 and record["wall_seconds"] > 0
    assert record["recipe"]["target"]["stage"] == "second"
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), result.output)
    assert any("lora_A" in name for name, _ in loaded.named_parameters())
    # the pipeline runs with it
    pipeline_file.write_text(
        pipeline_file.read_text().replace("    system:", f"    adapter: {result.output}\n    system:")
    )
    pipeline = load_pipeline(pipeline_file, store=":memory:")
    assert pipeline.invoke("the cat").messages[-1]["adapter"] == str(result.output)
    pipeline.close()


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_that_resumes_to_the_same_adapter(pipeline_file, data_file, tmp_path):
    straight = finetune(quick(pipeline_file, data_file, tmp_path / "straight"))

    def interrupt_at_step_two(log):
        if log.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    recipe = quick(pipeline_file, data_file, tmp_path / "resumed")
    with pytest.raises(Interrupted) as stopped:
        finetune(recipe, callbacks=Callbacks(on_step=interrupt_at_step_two))
    assert stopped.value.step == 2 and (tmp_path / "resumed" / "checkpoint" / "trainer_state.pt").is_file()
    steps = []
    resumed = finetune(recipe, resume=True, callbacks=Callbacks(on_step=steps.append))
    assert [log.step for log in steps] == [3, 4]
    assert resumed.record["resumed_at_steps"] == [2]
    a = load_file(straight.output / "adapter_model.safetensors")
    b = load_file(resumed.output / "adapter_model.safetensors")
    assert all(torch.allclose(a[key], b[key], atol=1e-6) for key in a)
    assert [e["loss"] for e in resumed.record["steps"]] == pytest.approx(
        [e["loss"] for e in straight.record["steps"]]
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda progress: progress.update(epoch=1), "its progress keys do not match: unknown epoch"),
        (lambda progress: progress.pop("step"), "its progress keys do not match: missing step"),
        (lambda progress: progress.update(step="2"), "its progress step is '2'"),
        (lambda progress: progress.update(losses=None), "its progress losses is None"),
    ],
    ids=["unknown-key", "missing-key", "step-as-text", "losses-none"],
)
def test_a_hand_edited_checkpoint_is_refused_as_damaged(pipeline_file, data_file, tmp_path, edit, message):
    def interrupt_at_step_two(log):
        if log.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    recipe = quick(pipeline_file, data_file, tmp_path / "edited")
    with pytest.raises(Interrupted):
        finetune(recipe, callbacks=Callbacks(on_step=interrupt_at_step_two))
    state_file = tmp_path / "edited" / "checkpoint" / "trainer_state.pt"
    state = torch.load(state_file, weights_only=True)
    edit(state["progress"])
    torch.save(state, state_file)
    with pytest.raises(FslmError, match="is damaged") as refused:
        finetune(recipe, resume=True)
    assert message in str(refused.value) and "start afresh with --force" in str(refused.value)


def test_finetuning_prints_no_library_deprecation_warning(pipeline_file, data_file, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        finetune(quick(pipeline_file, data_file, tmp_path / "quiet", gradient_checkpointing=True))
    deprecations = [w for w in caught if issubclass(w.category, FutureWarning | DeprecationWarning)]
    assert [str(warning.message) for warning in deprecations] == []


def test_resume_without_a_checkpoint_is_refused(pipeline_file, data_file, tmp_path):
    with pytest.raises(FslmError, match="nothing to resume"):
        finetune(quick(pipeline_file, data_file, tmp_path / "none"), resume=True)


def test_attach_keeps_comments_and_formatting(pipeline_file, data_file, tmp_path):
    result = finetune(quick(pipeline_file, data_file, tmp_path / "adapters" / "second"))
    before = pipeline_file.read_text()
    attach_adapter(pipeline_file, "second", result.output)
    after = pipeline_file.read_text()
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == ["    adapter: adapters/second"]
    assert "# the pipeline's own comment" in after and "model: m   # stays on this line" in after
    assert load_spec(pipeline_file).stages["second"].adapter == result.output


def test_recipe_paths_are_relative_to_the_recipe_and_flags_override_keys(tmp_path, pipeline_file, data_file):
    recipe_file = tmp_path / "recipes" / "second.yaml"
    recipe_file.parent.mkdir()
    recipe_file.write_text(
        "target: {pipeline: ../two.yaml, stage: second}\n"
        "data:\n  dataset: {path: ../data.jsonl}\n"
        "train: {max_steps: 3, learning_rate: 0.001}\n"
        "output: ../out\n"
    )
    recipe = load_recipe(recipe_file, {"train": {"max_steps": 7}})
    assert recipe.target.pipeline == pipeline_file.resolve()
    assert recipe.output == (tmp_path / "out").resolve()
    assert (recipe.train.max_steps, recipe.train.learning_rate) == (7, 0.001)


@pytest.mark.parametrize("path", list(reference_files()), ids=lambda p: p.name)
def test_recipe_reference_is_current(path):
    assert path.read_text() == reference_files()[path], "run: python -m fslm.finetune.reference"


@pytest.mark.parametrize(
    "path", sorted(Path(__file__).parent.parent.glob("finetune/*.yaml")), ids=lambda p: p.name
)
def test_shipped_recipes_validate(path):
    recipe = load_recipe(path)
    assert recipe.target.stage in load_spec(recipe.target.pipeline).stages
