"""Answer extraction and metrics: a choice letter, the last number, normalised text."""

import pytest

from fslm.eval.metrics import extract_choice, extract_number, extracted, normalize_text, score


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("The answer is (C).", "C"),
        ("answer: b", "B"),
        ("B) because metal conducts heat", "B"),
        ("(D)", "D"),
        ("  A", "A"),
        ("I would pick option (E) here", "E"),
        ("no letter in here", None),
    ],
)
def test_extract_choice(text, letter):
    assert extract_choice(text) == letter


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("48/2 = 24 clips in May.\n48+24 = 72 clips.\n#### 72", 72.0),
        ("She earned $1,234.50 in total", 1234.5),
        ("The temperature fell to -4 degrees", -4.0),
        ("Answer: 18\nThat is 3 more than 15.", 15.0),
        ("#### 5 apples, not 7", 5.0),
        ("about .5 of it", 0.5),
        ("none", None),
    ],
)
def test_extract_number_takes_the_marked_or_last_number(text, number):
    assert extract_number(text) == number


def test_normalize_text_drops_case_punctuation_articles_and_spacing():
    assert normalize_text("  The  Eiffel Tower, in PARIS! ") == "eiffel tower in paris"


def test_scores():
    assert score("numeric", "so the total is 72.", "#### 72") == 1.0
    assert score("numeric", "so the total is 71.", "72") == 0.0
    assert score("numeric", "1,000", "1000") == 1.0
    assert score("choice", "The answer is b.", "B") == 1.0
    assert score("exact", "The Paris.", ["London", "paris"]) == 1.0
    assert score("exact", "Paris, France", "paris") == 0.0
    assert score("contains", "It is Paris, France.", "paris") == 1.0
    assert score("contains", "Parisian food", "paris") == 0.0
    assert score("f1", "the cat sat", "cat sat down") == pytest.approx(0.8)
    assert score("f1", "dog", "cat") == 0.0


def test_extracted_shows_what_the_metric_read():
    assert extracted("numeric", "it is 3.0 apples") == "3"
    assert extracted("choice", "(c)") == "C"
    assert extracted("exact", "The Cat!") == "cat"
