"""The frame metric: parsing what an extraction stage writes into fields, frame and intent scores, micro slot
precision / recall / F1, and `fslm eval --metric frame` against SNIPS-style records (`intent` and `slots`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fslm.cli.main import main
from fslm.eval.frames import field_counts, frame_scores, frame_text, parse_frame, slot_f1_interval

REFERENCE = "intent: PlayMusic; artist: westbam; service: google music"


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        (REFERENCE, [("intent", "playmusic"), ("artist", "westbam"), ("service", "google music")]),
        ("Intent:  PlayMusic\nArtist: Westbam ", [("intent", "playmusic"), ("artist", "westbam")]),
        (
            '{"intent": "GetWeather", "city": ["paris", "rome"]}',
            [("intent", "getweather"), ("city", "paris"), ("city", "rome")],
        ),
        ("time: 10:30 pm", [("time", "10:30 pm")]),
        ("no frame here; : empty name; slot:", []),
        ('{"intent": ', []),
        ("", []),
    ],
    ids=["semicolons", "lines and case", "json", "colon in value", "garbage", "broken json", "empty"],
)
def test_parse_frame(text: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_frame(text) == pairs


def test_frame_text_round_trips() -> None:
    text = frame_text("PlayMusic", [("artist", "westbam"), ("service", "google music")])
    assert text == REFERENCE
    assert parse_frame(text) == parse_frame(REFERENCE)


@pytest.mark.parametrize(
    ("output", "frame", "intent"),
    [
        (REFERENCE, 1.0, 1.0),
        ("intent: PlayMusic; service: google music; artist: westbam", 1.0, 1.0),  # order does not matter
        ("intent: PlayMusic; artist: westbam", 0.0, 1.0),  # a slot missed
        (REFERENCE + "; album: allergic", 0.0, 1.0),  # a slot too many
        ("intent: AddToPlaylist; artist: westbam; service: google music", 0.0, 0.0),
        ("I think you want music", 0.0, 0.0),  # unparseable: wrong, not an error
    ],
)
def test_frame_scores(output: str, frame: float, intent: float) -> None:
    assert frame_scores(output, REFERENCE) == {"frame": frame, "intent": intent}


def test_field_counts_are_micro_averaged_per_slot_name() -> None:
    pairs = [
        (REFERENCE, REFERENCE),  # artist and service right
        ("intent: PlayMusic; artist: bach", REFERENCE),  # artist wrong (fp + fn), service missed (fn)
        ("intent: GetWeather; city: paris", "intent: GetWeather; city: paris; time: now"),
    ]
    rows = {row.name: row for row in field_counts(pairs)}
    assert next(iter(rows)) == "all slots"
    assert (
        rows["artist"].true_positives,
        rows["artist"].false_positives,
        rows["artist"].false_negatives,
    ) == (
        1,
        1,
        1,
    )
    assert (rows["service"].true_positives, rows["service"].false_negatives) == (1, 1)
    assert (rows["time"].true_positives, rows["time"].false_negatives, rows["time"].recall) == (0, 1, 0.0)
    everything = rows["all slots"]
    assert (everything.true_positives, everything.false_positives, everything.false_negatives) == (3, 1, 3)
    assert everything.precision == pytest.approx(3 / 4)
    assert everything.recall == pytest.approx(3 / 6)
    assert everything.f1 == pytest.approx(2 * 3 / (2 * 3 + 1 + 3))
    low, high = slot_f1_interval(pairs, resamples=200)
    assert 0.0 <= low <= everything.f1 <= high <= 1.0


PIPELINE = """models:
  m: {{source: {model}, dtype: float32}}
inputs: [text]
stages:
  parse:
    model: m
    prompt: "Command: {{{{ text }}}}\\nFrame:"
    generation: {{max_new_tokens: 6}}
"""
RECORDS = [
    {
        "text": "play westbam",
        "intent": "PlayMusic",
        "slots": [{"slot": "artist", "value": "westbam"}],
        "tags": [],
    },
    {"text": "weather in paris", "intent": "GetWeather", "slots": [{"slot": "city", "value": "paris"}]},
]


def run_eval(tmp_path: Path, tiny_model: Path, records: list[dict[str, Any]], *more: str) -> int:
    pipeline = tmp_path / "parser.yaml"
    pipeline.write_text(PIPELINE.format(model=tiny_model))
    data = tmp_path / "snips.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    command = [
        "eval",
        str(pipeline),
        "--data",
        str(data),
        "--metric",
        "frame",
        "--store",
        str(tmp_path / "r.db"),
    ]
    return main([*command, "--output", str(tmp_path / "out.jsonl"), *more])


def test_eval_scores_frames_against_intent_and_slots(tmp_path: Path, tiny_model: Path, capsys: Any) -> None:
    assert run_eval(tmp_path, tiny_model, RECORDS) == 0
    shown = capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().split("\n") if line]
    assert [row["reference"] for row in rows] == [
        "intent: PlayMusic; artist: westbam",
        "intent: GetWeather; city: paris",
    ]
    assert all(
        row["input"] == {"text": record["text"], **({"tags": []} if "tags" in record else {})}
        for row, record in zip(rows, RECORDS)
    )
    for row in rows:  # a random tiny model writes no frame: wrong, scored, not an error
        assert row["scores"] == frame_scores(row["output"], row["reference"])
    assert "slots (all: F1 95% interval" in shown and "frame" in shown and "intent" in shown


def test_eval_refuses_records_without_a_reference_frame(
    tmp_path: Path, tiny_model: Path, capsys: Any
) -> None:
    assert run_eval(tmp_path, tiny_model, [{"text": "play westbam", "intent": "PlayMusic"}]) == 2
    shown = " ".join(capsys.readouterr().err.split())
    assert "record 1 has no answer field 'answer', nor `intent` and `slots` fields" in shown
    assert run_eval(tmp_path, tiny_model, [{"text": "x", "intent": "PlayMusic", "slots": ["westbam"]}]) == 2
    assert "`slots` must be a list of" in " ".join(capsys.readouterr().err.split())
