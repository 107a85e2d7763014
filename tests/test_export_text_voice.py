"""Exports of typed and voice answers, on SQLite and PostgreSQL: the raw columns, the aggregated
text of a text set (vote or ROVER), and ``labelbot export --media`` against the fake Bot API."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

import storage.exports
from bot.cli import main
from bot.fakegram import FakeTelegram
from storage.engine import as_utc
from storage.exports import export_taskset
from storage.models import Answer, AnswerKind, Item, Membership, MembershipStatus
from storage.results import Recorded, Reviewed, ServedItem
from storage.reviews import StoredCorrection
from storage.store import LabelStore
from tasksets.export import RAW_COLUMNS, safe_cell
from tasksets.replies import Reply
from tasksets.spec import TaskSetSpec
from tests.conftest import Clock, running_bot
from tests.test_e2e_replies import joined, reply_spec
from tests.test_e2e_worker import settled
from tests.test_export import TRICKY_TEXT
from tests.test_reviews import review_of_item

WORKERS = (1, 2, 3, 4, 5)


async def text_set(store: LabelStore, name: str, items: list[str], **keys: Any) -> int:
    """A set answered with text or voice; each worker gets every item (answered as a skip, which
    ``answer`` then turns into the answer the test wants)."""
    spec = TaskSetSpec.model_validate(
        {
            "name": name,
            "question": "Type what you hear",
            "answer": "text_or_voice",
            "overlap": len(WORKERS),
            "items": [{"id": item, "text": f"clip {item}"} for item in items],
            **keys,
        }
    )
    taskset_id = await store.load_taskset(spec)
    for worker_id in WORKERS:
        await store.join(worker_id, f"Worker {worker_id}", taskset_id=taskset_id)
        served = await store.next_item_for(worker_id)
        while isinstance(served, ServedItem):
            outcome = await store.record_answer(served.token, worker_id, "skip")
            assert isinstance(outcome, Recorded)
            served = outcome.next
    return taskset_id


async def answer(
    store: LabelStore, taskset_id: int, item: str, worker_id: int, **values: Any
) -> None:
    """Make ``worker_id``'s answer to ``item`` the given typed or voice answer."""
    async with store.sessions.begin() as session:
        item_key = await session.scalar(
            select(Item.id).where(Item.taskset_id == taskset_id, Item.external_id == item)
        )
        await session.execute(
            update(Answer)
            .where(Answer.worker_id == worker_id, Answer.item_id == item_key)
            .values(**values)
        )


async def typed(store: LabelStore, taskset_id: int, item: str, texts: list[str]) -> None:
    for worker_id, text in zip(WORKERS, texts, strict=False):
        await answer(store, taskset_id, item, worker_id, kind=AnswerKind.TEXT, text=text)


async def exported(store: LabelStore, name: str, fmt: str = "csv", **options: Any) -> list[Any]:
    out = io.StringIO(newline="")
    await export_taskset(store, name, out, fmt=fmt, **options)  # type: ignore[arg-type]
    if fmt == "jsonl":
        return [json.loads(line) for line in out.getvalue().splitlines()]
    return list(csv.DictReader(io.StringIO(out.getvalue().removeprefix("\ufeff"), newline="")))


async def test_a_text_set_exports_the_voted_text_its_confidence_and_how_many_typed_it(
    store: LabelStore,
) -> None:
    taskset_id = await text_set(store, "capitals", ["q1", "q2", "q3"], aggregate="vote")
    # Worker 5 is suspended: their typed answers do not count.
    await typed(store, taskset_id, "q1", ["Paris", " paris.", "Paris", "Lyon", "Lyon"])
    await typed(store, taskset_id, "q2", ["=SUM(A1)", "=sum(a1)", "x"])
    await answer(
        store, taskset_id, "q2", 4, kind=AnswerKind.VOICE, voice_file_id="f", voice_seconds=2
    )
    await answer(store, taskset_id, "q3", 5, kind=AnswerKind.TEXT, text="Rome")
    async with store.sessions.begin() as session:
        await session.execute(
            update(Membership)
            .where(Membership.worker_id == 5)
            .values(status=MembershipStatus.SUSPENDED)
        )

    rows = {row["item_id"]: row for row in await exported(store, "capitals", method="ds")}

    assert (rows["q1"]["label"], rows["q1"]["confidence"], rows["q1"]["answers"]) == (
        "Paris",
        "0.75",
        "4",
    )
    # Two spellings of one form, the first in sort order wins, quoted for a spreadsheet; the
    # voice answer is no vote.
    assert (rows["q2"]["label"], rows["q2"]["answers"]) == ("'=SUM(A1)", "3")
    assert float(rows["q2"]["confidence"]) == pytest.approx(2 / 3, abs=1e-4)
    assert (rows["q3"]["label"], rows["q3"]["confidence"], rows["q3"]["answers"]) == (
        "",
        "0.0",
        "0",
    )
    assert rows["q1"]["text"] == "clip q1"


async def test_rover_aggregates_transcripts_word_by_word(store: LabelStore) -> None:
    taskset_id = await text_set(store, "dictation", ["s1"], aggregate="rover")
    await typed(
        store,
        taskset_id,
        "s1",
        [
            "The cat sat on the mat.",
            "the cat sat on the mat",
            "the bat sat on the mat",
            "the cat sat on a mat",
        ],
    )

    [row] = await exported(store, "dictation", fmt="jsonl")

    assert row["label"] == "the cat sat on the mat"
    # Two of the four transcripts match it within the set's gold_max_wer (0.1); one wrong word
    # in six does not.
    assert (row["confidence"], row["answers"]) == (0.5, 4)


async def test_raw_export_carries_texts_voice_notes_and_not_sure_reasons(
    store: LabelStore,
) -> None:
    taskset_id = await text_set(store, "mixed", ["q1"])
    await answer(store, taskset_id, "q1", 1, kind=AnswerKind.TEXT, text="-5 degrees")
    await answer(
        store,
        taskset_id,
        "q1",
        2,
        kind=AnswerKind.VOICE,
        voice_file_id="AwACAgIAAxk",
        voice_seconds=4,
        voice_bytes=5120,
    )
    await answer(store, taskset_id, "q1", 3, kind=AnswerKind.UNSURE, reason="@ noisy clip")

    raw = {row["worker"]: row for row in await exported(store, "mixed", raw=True)}
    lines = {row["worker"]: row for row in await exported(store, "mixed", "jsonl", raw=True)}

    assert (raw["1"]["label"], raw["1"]["text"]) == ("text", "'-5 degrees")
    assert (raw["2"]["label"], raw["2"]["voice_file_id"]) == ("voice", "AwACAgIAAxk")
    assert (raw["2"]["voice_seconds"], raw["2"]["voice_bytes"], raw["2"]["text"]) == (
        "4",
        "5120",
        "",
    )
    assert (raw["3"]["label"], raw["3"]["reason"]) == ("unsure", "'@ noisy clip")
    assert raw["4"]["label"] == "skip"
    assert lines[1]["text"] == "-5 degrees" and lines[3]["reason"] == "@ noisy clip"
    assert (lines[2]["voice_seconds"], lines[2]["voice_bytes"]) == (4, 5120)
    assert lines[4]["voice_file_id"] is None


async def test_raw_cells_of_any_text_are_what_csv_writer_and_json_dumps_write(
    store: LabelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typed texts, reasons and reviewers' corrections holding quotes, commas, line breaks and
    formula starts, beside voice notes and empty cells, over chunks of two answers: the raw
    export writes each row as csv.writer (spreadsheet-safe) and json.dumps write it."""
    monkeypatch.setattr(storage.exports, "CHUNK_ROWS", 2)
    taskset_id = await text_set(store, "tricky", ["q1", "=q2"])
    await typed(store, taskset_id, "q1", [TRICKY_TEXT, "=SUM(A1)", "plain", "", "-5, or so"])
    await answer(store, taskset_id, "=q2", 1, kind=AnswerKind.UNSURE, reason='"noisy"\r\nclip')
    await answer(
        store, taskset_id, "=q2", 2, kind=AnswerKind.VOICE, voice_file_id="+Aw", voice_seconds=4
    )
    async with store.sessions() as session:
        answers = (
            await session.execute(
                select(Answer, Item.external_id)
                .join(Item, Item.id == Answer.item_id)
                .where(Answer.taskset_id == taskset_id)
                .order_by(Answer.id)
            )
        ).all()
    found_wrong = {answers[0][0].id: '@them, "all"', answers[2][0].id: None}
    corrections = {
        answer_id: StoredCorrection(4, text, answers[0][0].created_at, MembershipStatus.ACTIVE)
        if text is not None
        else None
        for answer_id, text in found_wrong.items()
    }

    async def reviewed(_taskset_id: int) -> dict[int, StoredCorrection | None]:
        return corrections

    monkeypatch.setattr(store.reviews, "corrections", reviewed)
    rows = [
        {
            "item_id": item_id,
            "worker": row.worker_id,
            "label": row.label if row.kind == AnswerKind.LABEL else str(row.kind),
            "seconds": round(row.seconds, 3),
            "answered_at": as_utc(row.created_at).isoformat(),
            "text": row.text,
            "voice_file_id": row.voice_file_id,
            "voice_seconds": row.voice_seconds,
            "voice_bytes": row.voice_bytes,
            "reason": row.reason,
            "review": "wrong" if row.id in found_wrong else "",
            "correction": found_wrong.get(row.id) or "",
        }
        for row, item_id in answers
    ]
    expected_csv = io.StringIO(newline="")
    writer = csv.writer(expected_csv, lineterminator="\r\n")
    writer.writerow(RAW_COLUMNS)
    writer.writerows([safe_cell(row[column]) for column in RAW_COLUMNS] for row in rows)
    expected_jsonl = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)

    for fmt, expected in (("csv", "\ufeff" + expected_csv.getvalue()), ("jsonl", expected_jsonl)):
        out = io.StringIO(newline="")
        written = await export_taskset(store, "tricky", out, fmt=fmt, raw=True)  # type: ignore[arg-type]

        assert written == len(rows) == 10
        assert out.getvalue() == expected
    assert "'=SUM(A1)" in expected_csv.getvalue() and "'@them" in expected_csv.getvalue()


# -------------------------------------------------------------------- export --media


async def voice_set(
    store: LabelStore, telegram: FakeTelegram, items: list[str]
) -> dict[str, bytes]:
    """A voice set where worker 2 recorded each item; returns each file's bytes by file name."""
    taskset_id = await text_set(store, "voices", items)
    files = {}
    for number, item in enumerate(items):
        content = f"OggS voice {number}".encode()
        document = telegram.add_user_file(content, "voice.oga", "audio/ogg")
        await answer(
            store,
            taskset_id,
            item,
            2,
            kind=AnswerKind.VOICE,
            voice_file_id=document["file_id"],
            voice_seconds=3,
            voice_bytes=len(content),
        )
        files[f"{item.replace('/', '%2F')}-2.oga"] = content
    return files


def cli_settings(monkeypatch: pytest.MonkeyPatch, telegram: FakeTelegram) -> None:
    monkeypatch.setenv("LABELBOT_BOT_TOKEN", telegram.token)
    monkeypatch.setenv("LABELBOT_TELEGRAM_BASE_URL", telegram.base_url)
    monkeypatch.setenv("LABELBOT_TELEGRAM_BASE_FILE_URL", telegram.base_file_url)


async def run_cli(*args: str) -> int:
    # The CLI runs its own event loop: in a thread, while the fake serves on this one.
    return await asyncio.to_thread(main, list(args))


async def test_media_downloads_every_voice_file_once(
    store: LabelStore,
    telegram: FakeTelegram,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = await voice_set(store, telegram, ["v1", "clips/v2", "v3"])
    cli_settings(monkeypatch, telegram)
    media = tmp_path / "media"
    out = tmp_path / "answers.csv"

    code = await run_cli(
        "--database-url",
        db_url,
        "export",
        "voices",
        "--raw",
        "--out",
        str(out),
        "--media",
        str(media),
    )

    assert code == 0
    assert {path.name: path.read_bytes() for path in media.iterdir()} == files
    assert "3 downloaded, 0 there already, 0 failed" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8-sig").count("voice,") == 3

    # Run again: nothing is fetched twice, and a file already there is left as it is.
    (media / "v1-2.oga").write_bytes(b"kept")
    code = await run_cli("--database-url", db_url, "export", "voices", "--media", str(media))

    assert code == 0
    assert (media / "v1-2.oga").read_bytes() == b"kept"
    assert "0 downloaded, 3 there already, 0 failed" in capsys.readouterr().err


async def test_a_file_that_fails_is_named_and_the_others_still_download(
    store: LabelStore,
    telegram: FakeTelegram,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = await voice_set(store, telegram, ["v1", "v2", "v3"])
    taskset_id = await store.taskset_id("voices")
    assert taskset_id is not None
    await answer(store, taskset_id, "v2", 2, voice_file_id="no-such-file")
    cli_settings(monkeypatch, telegram)
    media = tmp_path / "media"

    code = await run_cli("--database-url", db_url, "export", "voices", "--media", str(media))

    assert code == 1
    assert sorted(path.name for path in media.iterdir()) == ["v1-2.oga", "v3-2.oga"]
    assert (media / "v3-2.oga").read_bytes() == files["v3-2.oga"]
    err = capsys.readouterr().err
    assert "labelbot: v2-2.oga: " in err and "file_id" in err.lower()
    assert "2 downloaded, 0 there already, 1 failed" in err


async def test_media_without_a_bot_token_stops_before_anything_is_written(
    store: LabelStore,
    telegram: FakeTelegram,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await voice_set(store, telegram, ["v1"])
    monkeypatch.delenv("LABELBOT_BOT_TOKEN", raising=False)
    out = tmp_path / "answers.csv"

    code = await run_cli(
        "--database-url",
        db_url,
        "export",
        "voices",
        "--out",
        str(out),
        "--media",
        str(tmp_path / "m"),
    )

    assert code == 2
    assert "LABELBOT_BOT_TOKEN" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "m").exists()


async def test_answers_a_worker_typed_and_recorded_in_the_chat_are_exported_with_their_file(
    telegram: FakeTelegram,
    db_url: str,
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running_bot(telegram, db_url, clock, rate_limit=0) as bot:
        spec = reply_spec("text_or_voice", max_seconds=20)
        ann, _first = await joined(bot, telegram, spec, 103)
        recording = b"OggS" + bytes(range(100))
        await settled(bot, telegram)
        await ann.send_voice(3, recording)
        await ann.wait_for("Item 2")
        await settled(bot, telegram)
        await ann.send_text("=typed instead")
        await ann.wait_for("Item 3")
        await settled(bot, telegram)
    cli_settings(monkeypatch, telegram)
    out, media = tmp_path / "answers.csv", tmp_path / "media"

    code = await run_cli(
        "--database-url",
        db_url,
        "export",
        spec.name,
        "--raw",
        "--out",
        str(out),
        "--media",
        str(media),
    )

    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [(row["item_id"], row["label"], row["text"]) for row in rows] == [
        ("t0", "voice", ""),
        ("t1", "text", "'=typed instead"),
    ]
    assert (rows[0]["voice_seconds"], rows[0]["voice_bytes"]) == ("3", str(len(recording)))
    assert (media / "t0-103.oga").read_bytes() == recording


async def test_a_typed_answer_found_wrong_counts_as_the_text_its_reviewers_typed(
    store: LabelStore,
) -> None:
    """Two reviewers find a transcript wrong and type the right one: the aggregated export
    takes the right text in its place, from the reviewer's seat; the raw export keeps what the
    worker typed, marked wrong, with the correction beside it."""
    review = {"text": 1.0, "min_answers": 1, "min_gold_accuracy": 0.0}
    spec = reply_spec(items=6, overlap=1, review=review)
    taskset_id = await store.load_taskset(spec)
    first_item = spec.items[0].text
    for worker_id in (1, 2, 3):  # each answers an item; the other two become reviewers
        await store.join(worker_id, f"Worker {worker_id}", taskset_id=taskset_id)
        assert isinstance(await store.next_item_for(worker_id), ServedItem)
        typed = "the cat sat on a hat" if worker_id == 1 else f"answer {worker_id}"
        assert isinstance(await store.record_reply(worker_id, 10, Reply(text=typed)), Recorded)
    for reviewer in (2, 3):
        served = await review_of_item(store, reviewer, first_item)
        outcome = await store.reviews.record_review(served.token, reviewer, False)
        assert isinstance(outcome, Reviewed) and outcome.correction_wanted is not None
        assert await store.reviews.set_correction(
            outcome.correction_wanted, reviewer, "the cat sat on the mat"
        )

    rows = {row["item_id"]: row for row in await exported(store, "text-set")}
    raw = await exported(store, "text-set", raw=True)

    assert (rows["t0"]["label"], rows["t0"]["answers"]) == ("the cat sat on the mat", "1")
    assert next((r["worker"], r["text"], r["review"], r["correction"]) for r in raw) == (
        "1",
        "the cat sat on a hat",
        "wrong",
        "the cat sat on the mat",
    )
