"""The parser refuses hostile task-set files with one clear problem and in bounded time: media
that points at the server's own network, a CSV a million columns wide, too many rows."""

from __future__ import annotations

import json
import time

import pytest

from tasksets.parsing import SpecOverrides, TaskSetError, parse_taskset_bytes
from tasksets.spec import checked_media_reference

PETS = SpecOverrides(name="pets", labels=["cat", "dog"])


def problems(data: bytes, fmt: str = "json", overrides: SpecOverrides = PETS) -> list[str]:
    with pytest.raises(TaskSetError) as caught:
        parse_taskset_bytes(data, fmt, overrides)  # type: ignore[arg-type]
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(
    "reference",
    [
        "https://example.org/cat.jpg",
        "http://cdn.example.com:8080/a/b.mp3?x=1",
        "https://93.184.216.34/cat.jpg",
        "AgACAgIAAxkBAAIBY2Xfile_id",
        "BAACAgIAAxkBAAI",
    ],
)
def test_public_urls_and_file_ids_are_accepted(reference: str) -> None:
    assert checked_media_reference(reference) == reference


@pytest.mark.parametrize(
    "reference",
    [
        "file:///etc/passwd",
        "ftp://example.org/cat.jpg",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "http://localhost/cat.jpg",
        "http://foo.localhost/cat.jpg",
        "https://127.0.0.1/cat.jpg",
        "http://10.0.0.5/cat.jpg",
        "http://192.168.1.1/cat.jpg",
        "http://172.16.0.1/cat.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/cat.jpg",
        "http://[::ffff:127.0.0.1]/cat.jpg",
        "http://[fd00::1]/cat.jpg",
        "http://0.0.0.0/cat.jpg",
        "http://2130706433/cat.jpg",
        "http://0x7f000001/cat.jpg",
        "http://127.1/cat.jpg",
        "http://intranet/cat.jpg",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://printer.local/cat.jpg",
        "https://example.org@127.0.0.1/cat.jpg",
        "https://example.org:99999/cat.jpg",
        "https://exa mple.org/cat.jpg",
        "cat.jpg",
        "/etc/passwd",
    ],
)
def test_local_private_and_odd_media_are_refused(reference: str) -> None:
    with pytest.raises(ValueError, match="is not a Telegram file_id or an http"):
        checked_media_reference(reference)


def test_a_file_url_names_its_item_and_field() -> None:
    data = json.dumps(
        {
            "name": "pets",
            "labels": ["cat", "dog"],
            "items": [
                {"id": "p1", "image": "https://example.org/cat.jpg"},
                {"id": "p2", "image": "file:///etc/passwd"},
                {"id": "p3", "audio": "http://10.1.2.3/a.ogg"},
            ],
        }
    ).encode()

    assert problems(data) == [
        "item 'p2' field 'image': 'file:///etc/passwd' is not a Telegram file_id or an http(s) "
        "URL of a public host",
        "item 'p3' field 'audio': 'http://10.1.2.3/a.ogg' is not a Telegram file_id or an "
        "http(s) URL of a public host",
    ]


def test_a_csv_a_million_columns_wide_is_refused_at_once() -> None:
    header = "id,text," + ",".join(f"c{n}" for n in range(1_000_000))
    started = time.perf_counter()

    found = problems(f"{header}\nt1,x\n".encode(), "csv")

    assert found == [
        "line 1: the header has 1,000,002 columns; a task set file has at most 7: "
        "id,text,image,audio,video,gold,explanation"
    ]
    assert time.perf_counter() - started < 5


def test_a_wide_header_without_id_is_quoted_short() -> None:
    [problem] = problems(("x," * 60 + "y\n1,2\n").encode(), "csv")
    assert problem.startswith("line 1: missing header") and len(problem) < 200


def test_rows_beyond_the_limit_are_counted_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real limit (10 million) makes too big a file for a unit test; the code is the same.
    monkeypatch.setattr("tasksets.parsing.MAX_ITEMS", 1000)
    # Every row past the limit repeats an id: counted, not kept, so not reported either.
    rows = "".join(f"t{number},x\n" for number in range(1000)) + "t0,x\n" * 5

    assert problems(f"id,text\n{rows}".encode(), "csv") == [
        "field 'items': takes at most 1,000 entries, got 1,005"
    ]


def test_a_file_of_bad_lines_lists_the_first_thousand_and_counts_the_rest() -> None:
    spec = b'{"name": "x", "labels": ["a", "b"]}\n{"id": "t1", "text": "fine"}\n'

    found = problems(spec + b"{broken\n" * 2500, "jsonl")

    assert len(found) == 1001
    assert found[0].startswith("line 3: invalid JSON") and found[999].startswith("line 1002:")
    assert found[-1] == "and 1,500 more problems"
