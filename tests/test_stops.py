"""The one stop-string rule that the single-model, boost and unite decoders share."""

from fslm.runtime.stops import cut_at_stop, stop_index


def test_no_stop_strings_or_none_found_leave_the_text_whole() -> None:
    assert stop_index("hello world", ()) is None
    assert stop_index("hello world", ("xyz",)) is None
    assert cut_at_stop("hello world", ("xyz",)) == "hello world"


def test_the_text_is_cut_before_the_earliest_stop_string_whichever_is_listed_first() -> None:
    assert stop_index("a. b\n c", ("\n", ".")) == 1
    assert cut_at_stop("a. b\n c", ("\n", ".")) == "a"
    assert cut_at_stop("Answer: yes\nQ:", ("Q:",)) == "Answer: yes\n"


def test_an_empty_stop_string_matches_nothing() -> None:
    assert stop_index("hello", ("",)) is None
    assert cut_at_stop("hello", ("", "l")) == "he"


def test_a_stop_string_split_across_tokens_is_found_once_its_last_piece_is_decoded() -> None:
    pieces = ["The answer", " is 4", "<", "/ans", "wer> and more"]
    texts = ["".join(pieces[: n + 1]) for n in range(len(pieces))]
    found = [stop_index(text, ("</answer>",)) for text in texts]
    assert found == [None, None, None, None, len("The answer is 4")]
    assert cut_at_stop(texts[-1], ("</answer>",)) == "The answer is 4"
