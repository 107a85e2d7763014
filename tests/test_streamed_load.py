"""Loading a task set file as a stream: read while stored, all or nothing, problems named as
when the whole file is checked first (both databases; the parser's own messages are in
tests/test_spec_parsing.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.cli import main
from storage import engine
from storage.models import Item, TaskSet
from storage.store import LabelStore
from tasksets.parsing import (
    CHUNK_ITEMS,
    Format,
    SpecOverrides,
    TaskSetError,
    TaskSetStream,
)

AB = SpecOverrides(name="stream", labels=["a", "b"])
# Past the first chunk: by the time the reader finds these, a chunk is in the transaction.
LATE = CHUNK_ITEMS + 7


def task_set_file(fmt: Format, items: list[dict[str, str]], name: str = "stream") -> bytes:
    """`items` as a file of format `fmt` (JSON with one item per line, so lines are known)."""
    spec = {"name": name, "labels": ["a", "b"]}
    if fmt == "jsonl":
        return "\n".join(json.dumps(row) for row in [spec, *items]).encode() + b"\n"
    if fmt == "csv":
        rows = [f"{row['id']},{row['text']},{row.get('gold', '')}" for row in items]
        return "\n".join(["id,text,gold", *rows]).encode() + b"\n"
    lines = [json.dumps(row) for row in items]
    head = json.dumps(spec)[:-1] + ', "items": [\n'
    return (head + ",\n".join(lines) + "\n]}\n").encode()


def items_with_late_problems(count: int) -> list[dict[str, str]]:
    items = [{"id": f"t{number}", "text": f"text {number}"} for number in range(count)]
    items[LATE] = {"id": "t3", "text": "the id of item 3 again"}
    items[LATE + 1] = {"id": "g1", "text": "a control item", "gold": "c"}
    return items


class ReadTracker(io.BytesIO):
    """A file that remembers how far it has been read."""

    furthest = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.furthest = max(self.furthest, self.tell())
        return data

    def read1(self, size: int = -1) -> bytes:
        data = super().read1(size)
        self.furthest = max(self.furthest, self.tell())
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = super().readinto(buffer)
        self.furthest = max(self.furthest, self.tell())
        return count


async def stored_counts(store: LabelStore) -> tuple[int, int]:
    async with store.sessions() as session:
        tasksets = await session.scalar(select(func.count()).select_from(TaskSet))
        items = await session.scalar(select(func.count()).select_from(Item))
    return tasksets or 0, items or 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_items_are_read_a_chunk_at_a_time(fmt: Format) -> None:
    count = 4 * CHUNK_ITEMS
    items = [{"id": f"t{number}", "text": f"text {number}"} for number in range(count)]
    data = task_set_file(fmt, items)
    stream = ReadTracker(data)
    chunks = TaskSetStream(stream, fmt, AB).item_chunks()

    first = next(chunks)

    assert len(first) == CHUNK_ITEMS
    assert stream.furthest < len(data) / 2  # the rest of the file is still unread
    assert sum(len(chunk) for chunk in chunks) == count - CHUNK_ITEMS


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_nothing_is_yielded_after_a_problem_and_every_problem_is_named(fmt: Format) -> None:
    data = task_set_file(fmt, items_with_late_problems(3 * CHUNK_ITEMS))
    yielded: list[int] = []

    with pytest.raises(TaskSetError) as caught:
        for chunk in TaskSetStream(io.BytesIO(data), fmt, AB).item_chunks():
            yielded.append(len(chunk))

    assert yielded == [CHUNK_ITEMS]  # the chunk holding the problems and those after: none
    first_line = 2  # of the items, in each format
    duplicate_line = first_line + LATE
    if fmt == "json":
        expected = [
            f"item 't3' field 'id': duplicate id: items[3] and items[{LATE}]",
            "item 'g1' field 'gold': 'c' is not one of the labels a, b",
        ]
    else:
        expected = [
            f"line {duplicate_line} item 't3' field 'id': duplicate id, also on line"
            f" {first_line + 3}",
            f"line {duplicate_line + 1} item 'g1' field 'gold': 'c' is not one of the labels a, b",
        ]
    assert [str(problem) for problem in caught.value.problems] == expected


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
async def test_a_problem_after_the_first_stored_chunk_stores_nothing(
    store: LabelStore, fmt: Format
) -> None:
    data = task_set_file(fmt, items_with_late_problems(2 * CHUNK_ITEMS))
    progress: list[int] = []

    with pytest.raises(TaskSetError, match="duplicate id"):
        await store.load_taskset(
            TaskSetStream(io.BytesIO(data), fmt, AB), on_progress=progress.append
        )

    assert progress == [CHUNK_ITEMS]  # a chunk was written, then rolled back
    assert await stored_counts(store) == (0, 0)


async def test_a_set_of_more_than_a_hundred_thousand_items_is_stored(store: LabelStore) -> None:
    count = 100_001
    data = ("id,text\n" + "".join(f"{number},x\n" for number in range(count))).encode()
    taskset = TaskSetStream(io.BytesIO(data), "csv", SpecOverrides(name="big", labels=["a", "b"]))

    await store.load_taskset(taskset)

    assert taskset.count == count
    assert await stored_counts(store) == (1, count)


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_cli_reports_a_late_problem_with_its_place_and_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: Format
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    path = tmp_path / f"late.{fmt}"
    path.write_bytes(task_set_file(fmt, items_with_late_problems(2 * CHUNK_ITEMS)))

    assert main(["--database-url", db, "load", str(path), "--labels", "a,b"]) == 2

    error = capsys.readouterr().err
    assert f"labelbot: {path} is not a valid task set:\n" in error
    assert "item 'g1' field 'gold': 'c' is not one of the labels a, b" in error
    assert main(["--database-url", db, "tasksets"]) == 0
    assert "no task sets yet" in capsys.readouterr().out


def test_cli_counts_the_items_on_stderr_with_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    path = tmp_path / "counted.csv"
    items = [{"id": f"t{number}", "text": "x"} for number in range(2 * CHUNK_ITEMS + 1)]
    path.write_bytes(task_set_file("csv", items))

    assert main(["--database-url", db, "load", str(path), "--labels", "a,b", "--progress"]) == 0

    captured = capsys.readouterr()
    assert f"loaded 'counted': {2 * CHUNK_ITEMS + 1} items (0 gold)" in captured.out
    assert f"{2 * CHUNK_ITEMS + 1:,} items" in captured.err


TRICKY_TEXTS = [
    'quotes " and \\ backslashes \\u0041 and \\n as typed',
    "lines\nand\ttabs\r\nand a line \u2028 separator",
    "emoji 😀👍🏽 and CJK 中文 and combining é",
    "null",
    "[1, 2]",
    '{"text": "json in a text"}',
]


async def test_every_value_is_stored_as_given(store: LabelStore) -> None:
    """Batches go to SQLite as multi-row INSERTs and to PostgreSQL by COPY: what comes back
    is what was given, whatever the characters, in the right columns and types."""
    items: list[dict[str, str]] = [
        {"id": f"{number:03d}", "text": text} for number, text in enumerate(TRICKY_TEXTS)
    ]
    items += [
        {"id": "1e3", "text": "an id that reads as a number", "gold": "b"},
        {"id": "media", "image": "https://example.org/cat.jpg", "text": "a cat?"},
        {"id": "plain", "audio": "AwACAgIAAxkBAAIB", "explanation": "said twice"},
    ]
    spec = {"name": "exact", "labels": ["a", "b"], "items": items}
    taskset = TaskSetStream(io.BytesIO(json.dumps(spec).encode()), "json", SpecOverrides())

    await store.load_taskset(taskset)

    async with store.sessions() as session:
        rows = (await session.scalars(select(Item).order_by(Item.position))).all()
    assert [
        (row.position, row.external_id, row.text, row.media_kind, row.media_ref) for row in rows
    ] == [
        (
            position,
            item["id"],
            item.get("text"),
            next((kind for kind in ("image", "audio") if kind in item), None),
            item.get("image", item.get("audio")),
        )
        for position, item in enumerate(items)
    ]
    gold = {row.external_id: (row.gold_label, row.is_gold, row.explanation) for row in rows}
    assert gold["1e3"] == ("b", True, None)
    assert gold["plain"] == (None, False, "said twice")
    assert all(row.answer_count == 0 and row.open and row.needed == 3 for row in rows)


async def test_a_sqlite_built_with_few_parameters_gets_shorter_statements(
    store: LabelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.32 (or built so) takes 999 parameters a statement: 76 rows of items."""
    monkeypatch.setattr(engine, "sqlite_max_parameters", lambda: 999)
    count = CHUNK_ITEMS + 100
    data = ("id,text\n" + "".join(f"t{number},x{number}\n" for number in range(count))).encode()

    await store.load_taskset(TaskSetStream(io.BytesIO(data), "csv", AB))

    async with store.sessions() as session:
        rows = (await session.execute(select(Item.position, Item.external_id, Item.text))).all()
    assert sorted(rows) == [(number, f"t{number}", f"x{number}") for number in range(count)]
