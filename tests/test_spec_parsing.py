"""Loading task set files: what a coordinator gets back for good and for broken files."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib.resources import files
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tasksets.parsing import (
    CHUNK_ITEMS,
    Format,
    Problem,
    SpecOverrides,
    TaskSetError,
    parse_caption,
    parse_taskset,
    parse_taskset_bytes,
)
from tasksets.spec import MAX_ITEMS, Item, Label, Overlap, TaskSetSpec

DATA = Path(__file__).parent / "data"
SENTIMENT = Path(str(files("tasksets") / "samples" / "sentiment.json"))
NO_OVERRIDES = SpecOverrides()
# What a coordinator passes on the command line for a CSV file.
PETS = SpecOverrides(name="pets", labels=["a", "b"])


def spec_json(**fields: object) -> bytes:
    """A valid JSON task set with `fields` replaced."""
    spec: dict[str, object] = {
        "name": "sentiment-v1",
        "labels": ["positive", "negative"],
        "items": [
            {"id": "t1", "text": "I love this phone"},
            {"id": "g1", "text": "Worst service ever", "gold": "negative"},
        ],
    }
    return json.dumps(spec | fields).encode()


def problems_of(
    data: bytes, fmt: Format = "json", overrides: SpecOverrides = NO_OVERRIDES
) -> list[str]:
    """The problems, as printed, that loading `data` reports."""
    with pytest.raises(TaskSetError) as caught:
        parse_taskset_bytes(data, fmt, overrides)
    assert str(caught.value) == "\n".join(map(str, caught.value.problems))
    return [str(problem) for problem in caught.value.problems]


# ------------------------------------------------------------------ valid files


def test_sample_sentiment_set_loads_with_gold_items_and_button_texts() -> None:
    spec = parse_taskset(SENTIMENT)

    assert spec.name == "sentiment-v1"
    assert len(spec.items) == 30
    gold = [item for item in spec.items if item.gold is not None]
    assert len(gold) == 5
    assert all(item.explanation for item in gold)
    assert spec.label_values == ["positive", "negative", "neutral"]
    assert spec.labels[0] == Label(value="positive", text="🙂 Positive")
    assert (spec.reward_minor, spec.currency) == (2, "USD")


def test_sample_truth_file_labels_every_sample_item_with_a_label() -> None:
    spec = parse_taskset(SENTIMENT)
    truth_file = SENTIMENT.with_name("sentiment_truth.csv")
    header, *rows = truth_file.read_text().split()
    truth = dict(row.split(",") for row in rows)

    assert header == "item,truth"
    assert set(truth) == {item.id for item in spec.items}
    assert set(truth.values()) == set(spec.label_values)
    assert all(truth[item.id] == item.gold for item in spec.items if item.gold)


def test_json_with_plain_labels_gets_defaults() -> None:
    spec = parse_taskset_bytes(spec_json(), "json")

    assert spec.labels == [
        Label(value="positive", text="positive"),
        Label(value="negative", text="negative"),
    ]
    assert spec.title == "sentiment-v1"
    assert spec.question == "Choose a label"
    assert spec.overlap == Overlap(min=3, max=3)
    assert (spec.reward_minor, spec.currency, spec.gold_ratio) == (0, "USD", 0.1)
    assert spec.qualification is None


def test_label_object_without_text_shows_its_value() -> None:
    spec = parse_taskset_bytes(spec_json(labels=[{"value": "positive"}, "negative"]), "json")

    assert spec.labels[0] == Label(value="positive", text="positive")


def test_values_are_stripped_and_numbers_become_strings() -> None:
    data = spec_json(
        name=" stars ",
        labels=[1, 2, 3],
        items=[{"id": 7, "text": "  Fine  ", "gold": 3, "image": "  "}],
    )
    spec = parse_taskset_bytes(data, "json")

    assert spec.name == "stars"
    assert spec.label_values == ["1", "2", "3"]
    assert spec.items == [Item(id="7", text="Fine", gold="3")]


def test_json_with_media_items_reports_their_kind() -> None:
    data = spec_json(
        items=[
            {"id": "p1", "image": "https://example.org/cat.jpg", "text": "Is this a cat?"},
            {"id": "p2", "video": "BAACAgIAAxkBAAI"},
            {"id": "t1", "text": "plain"},
        ]
    )
    media = [item.media for item in parse_taskset_bytes(data, "json").items]

    assert media == [("image", "https://example.org/cat.jpg"), ("video", "BAACAgIAAxkBAAI"), None]


def test_jsonl_file_has_spec_first_and_one_item_per_line() -> None:
    spec = parse_taskset(DATA / "reviews.jsonl")

    assert spec.name == "reviews"
    assert spec.overlap == Overlap(min=2, max=5, confidence=0.8)
    assert (spec.reward_minor, spec.currency) == (5, "EUR")
    assert [item.id for item in spec.items] == ["r1", "r2", "r3"]
    assert spec.items[2].media == ("audio", "https://example.org/r3.ogg")


def test_csv_file_takes_its_spec_from_overrides() -> None:
    overrides = SpecOverrides(name="pets", labels=["cat", "fox"], overlap=5, reward="0.10")
    spec = parse_taskset(DATA / "photos.csv", overrides)

    assert (spec.name, spec.label_values, spec.overlap.max) == ("pets", ["cat", "fox"], 5)
    assert spec.reward_minor == 10
    first, second, third, fourth = spec.items
    assert first.text == "Is this a cat, or a fox?"  # quoted comma, BOM before the header
    assert (first.gold, first.explanation) == ("cat", "Pointed ears, whiskers: a cat.")
    assert (second.text, second.gold) == ("Is this a cat?", None)  # stripped; empty cell absent
    assert third.text is not None and third.text.startswith('A "fox"')
    assert (fourth.text, fourth.media) == (None, ("image", "AgACAgIAAxkBAAIBY2Xfile_id"))


def test_csv_name_defaults_to_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "birds.csv"
    path.write_text("id,text\nb1,Sparrow\n")

    assert parse_taskset(path, SpecOverrides(labels=["yes", "no"])).name == "birds"


def test_overrides_win_over_the_file() -> None:
    overrides = SpecOverrides(name="copy", labels=["negative", "other"], overlap=1, reward="1")
    spec = parse_taskset_bytes(spec_json(reward="0.02"), "json", overrides)

    assert (spec.name, spec.label_values) == ("copy", ["negative", "other"])
    assert spec.overlap == Overlap(min=1, max=1)
    assert spec.reward_minor == 100


def test_overlap_is_a_count_or_a_range_with_confidence() -> None:
    fixed = parse_taskset_bytes(spec_json(overlap=5), "json")
    dynamic = parse_taskset_bytes(
        spec_json(overlap={"min": 2, "max": 5, "confidence": 0.9}), "json"
    )

    assert fixed.overlap == Overlap(min=5, max=5, confidence=None)
    assert dynamic.overlap == Overlap(min=2, max=5, confidence=0.9)


@pytest.mark.parametrize(
    ("overlap", "message"),
    [
        ({"min": 5, "max": 3}, "field 'overlap': min 5 is greater than max 3"),
        (0, "field 'overlap.min': Input should be greater than or equal to 1"),
        (101, "field 'overlap.max': Input should be less than or equal to 100"),
        (True, "field 'overlap': must be an object with named fields"),
    ],
)
def test_overlap_out_of_range_is_refused(overlap: object, message: str) -> None:
    assert message in problems_of(spec_json(overlap=overlap))


# ------------------------------------------------------------------ reward as exact decimals


@pytest.mark.parametrize(
    ("reward", "currency", "minor"),
    [
        ("0.02", "USD", 2),
        ("0.020", "USD", 2),
        (3, "USD", 300),
        ("5", "JPY", 5),
        ("0.125", "KWD", 125),
    ],
)
def test_reward_is_stored_in_minor_units(reward: object, currency: str, minor: int) -> None:
    spec = parse_taskset_bytes(spec_json(reward=reward, currency=currency), "json")

    assert spec.reward_minor == minor


def test_reward_written_as_a_json_number_keeps_its_exact_decimal() -> None:
    data = spec_json().replace(b'"name"', b'"reward": 0.1, "name"')
    spec = parse_taskset_bytes(data, "json")

    assert spec.reward == Decimal("0.1")
    assert spec.reward_minor == 10


@pytest.mark.parametrize(
    ("reward", "currency", "message"),
    [
        ("0.025", "USD", "field 'reward': amount 0.025 has more decimals than USD allows (2)"),
        ("0.5", "JPY", "field 'reward': amount 0.5 has more decimals than JPY allows (0)"),
        ("-1", "USD", "field 'reward': amount -1 is negative"),
        ("two cents", "USD", "field 'reward': 'two cents' is not a decimal amount such as 0.02"),
    ],
)
def test_reward_that_does_not_fit_the_currency_is_refused(
    reward: str, currency: str, message: str
) -> None:
    assert message in problems_of(spec_json(reward=reward, currency=currency))


def test_reward_given_as_a_python_float_is_refused() -> None:
    raw = json.loads(spec_json()) | {"reward": 0.1}

    with pytest.raises(ValidationError, match="decimal string"):
        TaskSetSpec.model_validate(raw)


def test_currency_code_is_upper_cased_and_checked() -> None:
    assert parse_taskset_bytes(spec_json(currency="eur"), "json").currency == "EUR"
    assert "field 'currency'" in problems_of(spec_json(currency="euro"))[0]


# ------------------------------------------------------------------ errors name line, item, field


def test_broken_json_names_its_line() -> None:
    broken = b"""{
  "name": "sentiment-v1",
  "labels": ["positive", "negative"],
  "items": [
    {"id": "t1", "text": "I love this phone"},
    {"id": "t2", "text": "Worst service ever"}
    {"id": "t3", "text": "the comma above is missing"}
  ]
}"""
    [problem] = problems_of(broken)

    assert problem.startswith("line 7: invalid JSON: Expecting ',' delimiter")


def test_duplicate_id_names_the_item_and_both_positions() -> None:
    items = [{"id": "t1", "text": "a"}, {"id": "t2", "text": "b"}, {"id": "t1", "text": "c"}]

    assert problems_of(spec_json(items=items)) == [
        "item 't1' field 'id': duplicate id: items[0] and items[2]"
    ]


def test_duplicate_id_in_jsonl_names_both_lines() -> None:
    data = (
        b'{"name": "x", "labels": ["a", "b"]}\n'
        b'{"id": "t1", "text": "a"}\n'
        b"\n"
        b'{"id": "t1", "text": "b"}\n'
    )

    assert problems_of(data, "jsonl") == [
        "line 4 item 't1' field 'id': duplicate id, also on line 2"
    ]


def test_a_nul_character_is_refused_where_it_is() -> None:
    """No database column of labelbot's can hold U+0000: refused before anything is stored."""
    data = (
        b'{"name": "x", "labels": ["a", "b"], "question": "Which\\u0000?"}\n'
        b'{"id": "t1", "text": "fine"}\n'
        b'{"id": "t2", "text": "a \\u0000 b"}\n'
    )
    nul = "contains a NUL character (U+0000), which cannot be stored"

    assert problems_of(data, "jsonl") == [
        f"line 1 field 'question': {nul}",
        f"line 3 item 't2' field 'text': {nul}",
    ]
    assert problems_of(b"id,text\nt1,a\x00b\n", "csv", PETS) == [
        f"line 2 item 't1' field 'text': {nul}"
    ]


def test_unknown_gold_label_names_the_item() -> None:
    items = [{"id": "g1", "text": "Meh", "gold": "maybe"}]

    assert problems_of(spec_json(items=items)) == [
        "item 'g1' field 'gold': 'maybe' is not one of the labels positive, negative"
    ]


def test_empty_label_list_names_the_labels_field() -> None:
    assert problems_of(spec_json(labels=[])) == ["field 'labels': needs at least 2 entries, got 0"]


def test_repeated_label_is_refused() -> None:
    assert problems_of(spec_json(labels=["yes", "no", "yes"])) == [
        "field 'labels': two labels have the value 'yes'"
    ]


def test_all_problems_are_reported_at_once() -> None:
    data = spec_json(
        name="Bad Name",
        labels=["a", {"value": "b" * 33}],
        items=[{"id": "t1"}, {"id": "t2", "image": "u", "audio": "v"}, {"text": "no id"}],
        colour="blue",
    )

    assert problems_of(data) == [
        "field 'name': 'Bad Name' is not a valid name: use 1-64 characters of a-z 0-9 _ -",
        "field 'labels[1].value': String should have at most 32 characters",
        "item 't1': needs text or a media field (image, audio or video)",
        "item 't2': has image and audio: an item takes at most one media field",
        "field 'items[2].id': is required",
        "field 'colour': unknown field",
    ]


def test_jsonl_reports_each_bad_line_and_still_checks_the_others() -> None:
    data = (
        b'{"name": "x", "labels": ["a", "b"]}\n'
        b'{"id": "t1", "text": "fine"}\n'
        b'{"id": "t2", "text": "broken",}\n'
        b'{"id": "t3"}\n'
        b'["t4", "not an object"]\n'
    )

    assert problems_of(data, "jsonl") == [
        "line 3: invalid JSON: Expecting property name enclosed in double quotes (column 31)",
        "line 4 item 't3': needs text or a media field (image, audio or video)",
        "line 5: must be an object with named fields",
    ]


def test_jsonl_spec_errors_point_at_line_one_unless_an_override_caused_them() -> None:
    data = b'{"name": "x", "labels": ["a", "b"], "gold_ratio": 2}\n{"id": "t1", "text": "a"}\n'

    assert problems_of(data, "jsonl", SpecOverrides(name="Bad")) == [
        "field 'name': 'Bad' is not a valid name: use 1-64 characters of a-z 0-9 _ -",
        "line 1 field 'gold_ratio': Input should be less than or equal to 1",
    ]


def test_jsonl_spec_line_must_not_hold_items() -> None:
    data = spec_json() + b'\n{"id": "t3", "text": "x"}\n'

    assert problems_of(data, "jsonl") == [
        "line 1 field 'items': put each item on its own line after the spec"
    ]


def test_csv_rows_are_named_by_their_line_even_after_multiline_cells() -> None:
    data = b'id,text,gold\nt1,"two\nlines",\nt2,ok,maybe\nt3,a,b,extra\n'

    assert problems_of(data, "csv", PETS) == [
        "line 4 item 't2' field 'gold': 'maybe' is not one of the labels a, b",
        "line 5: 4 values for 3 columns",
    ]


def test_csv_without_spec_options_says_where_to_give_them() -> None:
    [name, labels] = problems_of(b"id,text\nt1,hello\n", "csv")

    assert name.startswith("field 'name': is required (a CSV file holds only items")
    assert labels.startswith("field 'labels': is required")


def test_csv_without_header_is_refused() -> None:
    assert problems_of(b"t1,I love it\nt2,meh\n", "csv", PETS) == [
        "line 1: missing header: the first row must name the columns, e.g. id,text"
        " (found 't1,I love it')"
    ]


def test_csv_with_unknown_columns_is_refused() -> None:
    assert problems_of(b"id,text,Colour\nt1,x,red\n", "csv", PETS) == [
        "line 1 field 'colour': unknown column"
        " (known: id, text, image, audio, video, gold, explanation)"
    ]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_empty_file_is_refused(fmt: Format) -> None:
    assert problems_of(b" \n\n", fmt) == ["the file is empty"]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
@pytest.mark.parametrize("data", [b"\xef", b"\n\n\xef\xbb"])
def test_a_lone_start_of_a_byte_order_mark_is_not_utf8(fmt: Format, data: bytes) -> None:
    line = data.count(b"\n") + 1

    assert problems_of(data, fmt) == [
        f"line {line}: not UTF-8 text: save the file with UTF-8 encoding"
    ]


def test_file_that_is_not_utf8_names_the_line() -> None:
    data = spec_json().replace(b'"I love', b'\n"I \xe9 love')

    assert problems_of(data) == ["line 2: not UTF-8 text: save the file with UTF-8 encoding"]


def test_json_array_at_top_level_is_refused() -> None:
    assert problems_of(b"[1, 2]") == ['the file must hold one JSON object: {"name": ...}']


def test_nan_is_not_a_number_here() -> None:
    assert problems_of(spec_json().replace(b'"name"', b'"gold_ratio": NaN, "name"')) == [
        "invalid JSON: NaN is not a number"
    ]


def test_huge_numbers_are_refused_quickly() -> None:
    assert problems_of(spec_json().replace(b'"name"', b'"overlap": 1e999999999, "name"')) == [
        "invalid JSON: number 1e999999999 is out of range"
    ]


def test_unsupported_extension_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "set.xlsx"
    path.write_bytes(b"PK")

    with pytest.raises(TaskSetError, match=r"unsupported file type '\.xlsx'"):
        parse_taskset(path)


def test_missing_file_is_a_task_set_error(tmp_path: Path) -> None:
    with pytest.raises(TaskSetError, match="cannot read"):
        parse_taskset(tmp_path / "absent.json")


def test_more_items_than_the_limit_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tasksets.parsing.MAX_ITEMS", 1000)
    rows = "".join(f"t{number},x\n" for number in range(1001))
    data = f"id,text\n{rows}".encode()

    assert problems_of(data, "csv", PETS) == [
        "field 'items': takes at most 1,000 entries, got 1,001"
    ]


def test_a_set_may_hold_more_than_a_hundred_thousand_items() -> None:
    count = 100_001
    assert MAX_ITEMS >= 1_000_000
    data = ("id,text\n" + "".join(f"{number},x\n" for number in range(count))).encode()

    spec = parse_taskset_bytes(data, "csv", PETS)

    assert len(spec.items) == count and spec.items[-1].id == str(count - 1)


def test_qualification_needs_enough_gold_items() -> None:
    data = spec_json(qualification={"items": 3, "min_accuracy": 0.8})

    assert problems_of(data) == [
        "field 'qualification.items': asks for 3 gold items but the set has 1"
    ]


def test_item_text_must_fit_a_telegram_message() -> None:
    items = [{"id": "p1", "image": "u", "text": "x" * 1025}]

    assert problems_of(spec_json(items=items)) == [
        "item 'p1' field 'text':"
        " has 1025 characters; Telegram shows at most 1024 as a media caption"
    ]


def test_an_item_whose_message_with_number_and_question_is_too_long_names_its_line() -> None:
    # 4,090 characters pass the text's own limit; "Item 3", the question and the blank lines
    # between them take the message past Telegram's 4,096.
    items = [
        {"id": "t1", "text": "short"},
        {"id": "t2", "text": "x" * 4090},
        {"id": "t3", "text": "ok"},
    ]
    lines = [json.dumps({"name": "long", "labels": ["a", "b"], "question": "Which?"})]
    lines += [json.dumps(item) for item in items]
    data = "\n".join(lines).encode()

    assert problems_of(data, "jsonl") == [
        "line 3 item 't2' field 'text': with its item number and the question the message"
        " has 4106 characters; Telegram sends at most 4096"
    ]


def test_telegram_counts_an_emoji_as_two_characters() -> None:
    items = [{"id": "p1", "image": "u", "text": "😀" * 513}]

    assert problems_of(spec_json(items=items)) == [
        "item 'p1' field 'text':"
        " has 1026 characters; Telegram shows at most 1024 as a media caption"
    ]


def test_problem_without_a_place_is_just_its_message() -> None:
    assert str(Problem(None, None, None, "the file is empty")) == "the file is empty"


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_task_set_error(fmt: Format, data: bytes) -> None:
    try:
        parse_taskset_bytes(data, fmt, SpecOverrides(labels=["a", "b"]), default_name="x")
    except TaskSetError as error:
        assert error.problems


@given(text=st.text(alphabet='{}[]":,0123456789.eE-+ \nidtextlabelsnamegold\\', max_size=200))
def test_json_like_text_parses_or_raises_task_set_error(text: str) -> None:
    try:
        parse_taskset_bytes(text.encode(), "json")
    except TaskSetError as error:
        assert error.problems


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children)
    ),
    max_leaves=5,
)
SPEC_KEYS = ["name", "title", "question", "labels", "overlap", "reward", "currency", "gold_ratio"]
ITEM_KEYS = ["id", "text", "image", "audio", "gold", "explanation"]


@settings(max_examples=50)
@given(
    spec=st.dictionaries(st.sampled_from(SPEC_KEYS), JSON_VALUES),
    items=st.lists(st.dictionaries(st.sampled_from(ITEM_KEYS), JSON_VALUES) | JSON_VALUES),
)
def test_any_json_shaped_spec_parses_or_raises_task_set_error(
    spec: dict[str, object], items: list[object]
) -> None:
    try:
        parse_taskset_bytes(json.dumps(spec | {"items": items}).encode(), "json")
    except TaskSetError as error:
        assert error.problems


# ------------------------------------------------------------------ chat caption


def test_caption_gives_spec_values() -> None:
    assert parse_caption("name=pets labels=cat|dog|fox overlap=3 reward=0.02") == SpecOverrides(
        name="pets", labels=["cat", "dog", "fox"], overlap=3, reward="0.02"
    )


def test_caption_accepts_quotes_commas_and_any_order() -> None:
    assert parse_caption('reward=1 LABELS="very good,bad"') == SpecOverrides(
        labels=["very good", "bad"], reward="1"
    )


def test_empty_caption_overrides_nothing() -> None:
    assert parse_caption("") == SpecOverrides()


def test_caption_with_unknown_words_is_refused() -> None:
    with pytest.raises(TaskSetError) as caught:
        parse_caption("name=pets colour=red overlap=three")

    assert [str(problem) for problem in caught.value.problems] == [
        "caption: 'colour=red' is not one of name=, labels=, overlap=, reward=, answer=",
        "field 'overlap': 'three' is not a whole number",
    ]


def test_caption_with_an_open_quote_is_refused() -> None:
    with pytest.raises(TaskSetError, match="No closing quotation"):
        parse_caption('labels="a|b')


def test_a_repeated_id_names_its_first_use_however_far_back() -> None:
    """Ids are remembered in sorted runs merged as the set is read: a repeat is found in any
    run, and every repeat of an id names its first use, not the repeat before."""
    count = 4 * CHUNK_ITEMS + 123
    rows = [f"t{number},text {number}" for number in range(count)]
    rows[CHUNK_ITEMS + 5] = "t7,again in the second chunk"
    rows += ["t7,again", f"t{count - 1},again", "t7,and again"]
    data = ("id,text\n" + "\n".join(rows) + "\n").encode()
    line_of = {number: number + 2 for number in range(len(rows))}  # after the header

    assert problems_of(data, "csv", PETS) == [
        f"line {line_of[CHUNK_ITEMS + 5]} item 't7' field 'id': duplicate id, also on line 9",
        f"line {line_of[count]} item 't7' field 'id': duplicate id, also on line 9",
        f"line {line_of[count + 1]} item 't{count - 1}' field 'id': duplicate id, also on line"
        f" {line_of[count - 1]}",
        f"line {line_of[count + 2]} item 't7' field 'id': duplicate id, also on line 9",
    ]
