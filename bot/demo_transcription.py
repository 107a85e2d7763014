"""``labelbot demo --scenario transcription``: typed answers, offline, through the real bot.

The demo sample holds 40 audio clips to transcribe and 8 gold clips with their expected text
(the Harvard sentences, read aloud in speech tests since 1969). A simulated crowd of typists,
each making word errors at their own rate, hears a clip (the simulation knows what it says),
types it out and sends it as a message; one spammer sends "ok" to everything. As in the
default demo, a simulated clock decides who answers next and the next answer waits for the
bot's reply, so a seed gives the same run on every machine and on both databases.

The last line is the word error rate against the true sentences of three transcripts of the
regular clips:

- ``one-typist``: a single answer per clip (each clip's first by a worker not suspended);
- ``rover-all``: ROVER over each clip's first three answers, the spammer's included: what the
  crowd gives without quality controls;
- ``quality-controls``: ROVER over the answers of the workers who were not suspended (a
  suspended worker's clips were answered again by others).
"""

from __future__ import annotations

import csv
import heapq
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from bot.app import build_application, polling
from bot.demo import (
    EXIT_NOT_EMPTY,
    FIRST_WORKER_ID,
    START,
    TERMINAL,
    SimulatedClock,
    demo_settings,
    load_into_empty,
)
from bot.fakegram import FakeTelegram, FakeUser
from handlers.services import Services
from storage.models import AnswerKind
from storage.store import LabelStore, StoredAnswer
from tasksets.export import write_csv
from tasksets.parsing import parse_taskset_bytes
from tasksets.spec import TaskSetSpec
from tasksets.text import TextAnswers, rover, word_error_rate

SAMPLE = "transcription-demo.json"
TRUTH = "transcription-demo_truth.csv"
CLIP = re.compile(r"^Clip (\w+)$", re.MULTILINE)
# Words a careless typist slips in.
FILLERS = ("uh", "the", "a", "and", "so")


@dataclass(frozen=True)
class Typist:
    """How a simulated worker transcribes: each word is mistyped, dropped or joined by an extra
    word with probability ``error_rate``, after about ``seconds`` of listening and typing. A
    spammer with a ``canned`` answer sends it whatever the clip says."""

    kind: str
    error_rate: float
    seconds: float
    canned: str | None = None

    def transcribe(self, sentence: str, rng: random.Random) -> str:
        if self.canned is not None:
            return self.canned
        typed: list[str] = []
        for word in sentence.split():
            roll = rng.random()
            if roll >= self.error_rate:
                typed.append(word)
            elif roll < self.error_rate * 0.6 and len(word) > 2:  # a typo: two letters swap
                at = rng.randrange(len(word) - 1)
                typed.append(word[:at] + word[at + 1] + word[at] + word[at + 2 :])
            elif roll < self.error_rate * 0.85:  # a word left out
                continue
            else:  # a word too many
                typed += [word, rng.choice(FILLERS)]
        return " ".join(typed)

    def typing_ms(self, rng: random.Random) -> int:
        return max(1, round(1000 * rng.lognormvariate(math.log(self.seconds), 0.3)))


CAREFUL = Typist("careful", 0.03, 14.0)
AVERAGE = Typist("average", 0.10, 10.0)
CARELESS = Typist("careless", 0.25, 6.0)
CROWD: tuple[tuple[str, Typist], ...] = (
    ("Alice", CAREFUL),
    ("Bashir", CAREFUL),
    ("Chen", AVERAGE),
    ("Dana", AVERAGE),
    ("Emeka", AVERAGE),
    ("Farah", AVERAGE),
    ("Gus", CARELESS),
    ("Hiro", CARELESS),
    ("Ines", Typist("spammer", 1.0, 2.5, canned="ok")),
)


@dataclass(frozen=True)
class Clips:
    spec: TaskSetSpec
    truth: dict[str, str]  # clip id -> what it says, for gold and regular clips

    @property
    def regular(self) -> list[str]:
        return [item.id for item in self.spec.items if item.gold is None]


def load_clips() -> Clips:
    samples = resources.files("tasksets").joinpath("samples")
    rows = csv.DictReader(samples.joinpath(TRUTH).read_text(encoding="utf-8").splitlines())
    return Clips(
        parse_taskset_bytes(samples.joinpath(SAMPLE).read_bytes(), "json"),
        {row["item"]: row["truth"] for row in rows},
    )


def is_next_step(message: dict[str, Any], *, after: int) -> bool:
    """A newer item with buttons, or the bot's word that there is no more work."""
    if message["message_id"] <= after:
        return False
    body = message.get("text") or message.get("caption") or ""
    if "reply_markup" in message:
        return body.startswith("Item")
    return any(word in body for word in TERMINAL)


class SimulatedTypist:
    """A typist at a phone: plays the clip on screen, types what they heard, waits for the bot."""

    def __init__(self, user: FakeUser, typist: Typist, clips: Clips, seed: int) -> None:
        self.user, self.typist, self.clips, self.seed = user, typist, clips, seed
        self.timing = random.Random(f"{seed}/{user.first_name}/timing")
        self.item: dict[str, Any] = {}
        self.ending = ""

    def typing_ms(self) -> int:
        return self.typist.typing_ms(self.timing)

    async def start(self) -> bool:
        await self.user.send_text(f"/start {self.clips.spec.name}")
        return await self._next_step(after=0)

    async def answer(self) -> bool:
        """Type out the clip on screen; True when the bot served another."""
        clip = CLIP.search(self.item.get("caption") or self.item.get("text") or "")
        assert clip is not None, self.item
        rng = random.Random(f"{self.seed}/{self.user.first_name}/{clip[1]}")
        await self.user.send_text(self.typist.transcribe(self.clips.truth[clip[1]], rng))
        return await self._next_step(after=self.user.sent[-1]["message_id"])

    async def _next_step(self, *, after: int) -> bool:
        message = await self.user.wait_for(partial(is_next_step, after=after), timeout=30)
        if "reply_markup" in message:
            self.item = message
            return True
        self.ending = message.get("text", "")
        return False


async def transcription_demo(out: Path, database_url: str, seed: int) -> int:
    console = Console(width=max(Console().width, 110), highlight=False)
    clips = load_clips()
    spec = clips.spec
    clock = SimulatedClock()
    taskset_id = await load_into_empty(database_url, spec, clock)
    if taskset_id is None:
        return EXIT_NOT_EMPTY
    console.rule("[bold]labelbot demo: transcription")
    console.print(
        f"Task set [bold]{spec.title}[/]: {len(clips.regular)} clips and "
        f"{len(spec.items) - len(clips.regular)} gold clips, typed answers up to "
        f"{spec.max_length} characters, overlap {spec.overlap.min}, gold right at a word error "
        f"rate of at most {spec.gold_max_wer:g}. Seed {seed}."
    )
    console.print(
        "Crowd: "
        + ", ".join(f"{name} ({typist.kind}, {typist.error_rate:.0%})" for name, typist in CROWD)
    )
    async with FakeTelegram() as telegram:
        application = build_application(
            demo_settings(telegram, database_url),
            migrate=False,
            clock=clock,
            rng=random.Random(seed),
        )
        typists = [
            SimulatedTypist(telegram.user(FIRST_WORKER_ID + n, name), typist, clips, seed)
            for n, (name, typist) in enumerate(CROWD)
        ]
        async with polling(application, poll_timeout=1):
            due: list[tuple[int, int, SimulatedTypist]] = []
            for order, typist in enumerate(typists):
                if await typist.start():
                    heapq.heappush(due, (typist.typing_ms(), order, typist))
            elapsed = 0
            while due:
                elapsed, order, typist = heapq.heappop(due)
                clock.now = START + timedelta(milliseconds=elapsed)
                if await typist.answer():
                    heapq.heappush(due, (elapsed + typist.typing_ms(), order, typist))
            console.print(f"The crowd worked for {elapsed / 60_000:.0f} simulated minutes.")
            services: Services = application.bot_data
            await report(console, services.store, taskset_id, clips, out)
    return 0


async def report(
    console: Console, store: LabelStore, taskset_id: int, clips: Clips, out: Path
) -> None:
    answers = [a for a in await store.answers_for_export(taskset_id) if a.kind == AnswerKind.TEXT]
    scores = await store.leaderboard(taskset_id)
    table = Table(title="Workers")
    for column in ("worker", "kind", "answers", "gold right", "status"):
        table.add_column(column)
    for score in scores:
        kind = CROWD[score.worker_id - FIRST_WORKER_ID][1].kind
        table.add_row(
            score.name,
            kind,
            str(score.answers),
            f"{score.gold_correct}/{score.gold_answers}",
            score.status if not score.reason else f"{score.status}: {score.reason}",
        )
    console.print(table)

    regular = clips.regular
    trusted = [a for a in answers if a.membership != "suspended"]
    first = first_answers(trusted, regular, 1)
    everyone = rover_transcripts(first_answers(answers, regular, 3), regular)
    controlled = rover_transcripts(trusted, regular)
    with (out / f"{clips.spec.name}-rover.csv").open("w", encoding="utf-8", newline="") as f:
        write_csv(
            ({"item_id": clip, "text": controlled[clip]} for clip in regular),
            ("item_id", "text"),
            f,
        )
    console.print(f"ROVER transcripts written to [bold]{out}/{clips.spec.name}-rover.csv[/].")
    one = mean_wer(clips, {a.item_id: a.text or "" for a in first})
    console.print(
        f"word error rate  one-typist {one:.1%}  "
        f"rover-all {mean_wer(clips, everyone):.1%}  "
        f"quality-controls {mean_wer(clips, controlled):.1%}"
    )


def first_answers(
    answers: Sequence[StoredAnswer], clips: Sequence[str], per_clip: int
) -> list[StoredAnswer]:
    """Each regular clip's first ``per_clip`` typed answers, in the order they came."""
    wanted = set(clips)
    taken: dict[str, int] = {}
    kept = []
    for answer in answers:
        if answer.item_id in wanted and taken.get(answer.item_id, 0) < per_clip:
            taken[answer.item_id] = taken.get(answer.item_id, 0) + 1
            kept.append(answer)
    return kept


def rover_transcripts(answers: Sequence[StoredAnswer], clips: Sequence[str]) -> dict[str, str]:
    index = {clip: n for n, clip in enumerate(clips)}
    workers = {worker: n for n, worker in enumerate(sorted({a.worker_id for a in answers}))}
    rows = [a for a in answers if a.item_id in index]
    voted = rover(
        TextAnswers(
            items=np.array([index[a.item_id] for a in rows], dtype=np.int64),
            workers=np.array([workers[a.worker_id] for a in rows], dtype=np.int64),
            texts=[a.text or "" for a in rows],
            n_items=len(clips),
            n_workers=max(len(workers), 1),
        )
    )
    return {clip: text or "" for clip, text in zip(clips, voted, strict=True)}


def mean_wer(clips: Clips, transcripts: dict[str, str]) -> float:
    """Word error rate against the truth, averaged over the regular clips (none typed: 100%)."""
    rates = [
        word_error_rate(clips.truth[clip], transcripts[clip]) if clip in transcripts else 1.0
        for clip in clips.regular
    ]
    return sum(rates) / len(rates)
