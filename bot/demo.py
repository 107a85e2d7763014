"""``labelbot demo``: a reproducible labeling experiment, offline, through the real Application.

An embedded fake Telegram, the demo sample of tweets with gold questions, and a simulated crowd
of 15: careful, average and careless workers, and three spammers, who tap the inline buttons of
the real bot. A simulated clock drives the crowd: each worker taps when their reading time is
up, one tap at a time, and the next tap waits for the bot's reply. There is no race, so a seed
gives the same run, the same numbers and the same exports on every machine and on both
databases, and the answer times the quality rules judge are the simulated ones.

The last line scores three labelings of the regular (non-gold) items against the hidden truth.
All three are plain majority votes, so they differ only in whose answers count:

- ``quality-controls``: the labels the demo exports. The answers of suspended workers are left
  out, and each item they labeled was answered once more by someone else.
- ``honest-crowd``: the same, had every spammer been an average worker. Each spammer's answer
  becomes the answer an average worker gives to that item (drawn with the same seed), and as
  an average worker is not suspended, their items ask for no extra answer: each item keeps
  its first three answers.
- ``majority-vote``: each item's first three answers as they came, spammers' included: what
  this crowd gives without quality controls.

The controls pay off when quality-controls beats majority-vote and comes within a point of
honest-crowd: then the spammers cost next to nothing.

``--scenario review`` runs the same crowd on the same set with a review stream (REVIEW_RULE):
workers who reach the reviewer level also check a share of the others' answers and the answers
on items whose confidence stayed low, in the same loop, judging each as they would label it.
It prints the stream's state, and quality-controls then counts the reviewers' corrections in
place of the answers they found wrong.
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from bot import event_loop
from bot.app import build_application, polling
from bot.fakegram import FakeTelegram, FakeUser
from bot.settings import Settings
from handlers.services import Services
from storage.engine import create_engine
from storage.exports import code_answers, export_taskset
from storage.migrate import upgrade
from storage.store import LabelStore, StoredAnswer, StoredItem, WorkerScore
from tasksets.aggregation import aggregate
from tasksets.money import format_money, to_minor
from tasksets.parsing import parse_taskset_bytes
from tasksets.spec import TaskSetSpec

SAMPLE = "sentiment-demo.json"
TRUTH = "sentiment-demo_truth.csv"
EXIT_NOT_EMPTY = 2
FIRST_WORKER_ID = 1000
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # the simulated clock's first reading
# The bot's word that a worker gets no more items: all done, or suspended.
TERMINAL = ("All done", "paused")
# The review scenario's "review" block: a tenth of the answers and those of contested items
# go to workers with 25 answers and a smoothed gold accuracy of 85%, for 0.01 a review.
REVIEW_RULE = {
    "sample": 0.1,
    "below_confidence": 0.7,
    "reward": "0.01",
    "min_answers": 25,
    "min_gold_accuracy": 0.85,
}


@dataclass(frozen=True)
class Persona:
    """How a simulated worker labels: the true label with probability ``accuracy`` (otherwise
    one of the other labels at random), after a reading time of about ``seconds``. A spammer
    with a ``favourite`` taps that label whatever the item says."""

    kind: str
    accuracy: float
    seconds: float
    favourite: str | None = None

    def answer(self, truth: str, labels: Sequence[str], rng: random.Random) -> str:
        if self.favourite is not None:
            return self.favourite
        if rng.random() < self.accuracy:
            return truth
        return rng.choice([label for label in labels if label != truth])

    def reading_ms(self, rng: random.Random) -> int:
        # Log-normal: most answers take about the typical time, a few take much longer.
        return max(1, round(1000 * rng.lognormvariate(math.log(self.seconds), 0.4)))


CAREFUL = Persona("careful", 0.95, 9.0)
AVERAGE = Persona("average", 0.85, 6.0)
CARELESS = Persona("careless", 0.65, 3.0)
# Worker ids follow this order from FIRST_WORKER_ID. The spammers are fast, each in a way one
# rule catches: too fast to read, always the same label, or no better than chance on gold.
CROWD: tuple[tuple[str, Persona], ...] = (
    ("Alice", CAREFUL),
    ("Bashir", CAREFUL),
    ("Chen", CAREFUL),
    ("Dana", AVERAGE),
    ("Emeka", AVERAGE),
    ("Farah", AVERAGE),
    ("Gus", AVERAGE),
    ("Hiro", AVERAGE),
    ("Ines", AVERAGE),
    ("Jonas", AVERAGE),
    ("Kofi", CARELESS),
    ("Lena", CARELESS),
    ("Mateo", Persona("spammer", 1 / 3, 0.6)),  # with three labels, 1 in 3 right is random
    ("Nadia", Persona("spammer", 0.0, 1.5, favourite="positive")),
    ("Omar", Persona("spammer", 1 / 3, 2.0)),
)


def member(worker_id: int) -> tuple[str, Persona]:
    return CROWD[worker_id - FIRST_WORKER_ID]


def answer_rng(seed: int, worker: str, item_id: str) -> random.Random:
    """The chance behind one worker's answer to one item. It depends on nothing else, not on
    the order the bot hands items out in, so the honest-crowd figure can give a spammer's seat
    the answer an average worker would have given there."""
    return random.Random(f"{seed}/{worker}/{item_id}")


@dataclass(frozen=True)
class Sample:
    spec: TaskSetSpec
    truth: dict[str, str]  # item id -> true label, for gold and regular items

    @cached_property
    def item_by_text(self) -> dict[str, str]:
        return {item.text or "": item.id for item in self.spec.items}

    @cached_property
    def regular(self) -> frozenset[str]:
        return frozenset(item.id for item in self.spec.items if item.gold is None)

    @cached_property
    def button_text(self) -> dict[str, str]:
        return {label.value: label.text for label in self.spec.labels}

    def accuracy(self, labeled: dict[str, str]) -> float:
        """Share of the regular items labeled with their true label (unlabeled counts as wrong)."""
        hits = sum(labeled.get(item_id) == self.truth[item_id] for item_id in self.regular)
        return hits / len(self.regular)


def load_sample(*, review: bool = False) -> Sample:
    """The demo's set and its hidden truth; with ``review``, the set has REVIEW_RULE."""
    samples = resources.files("tasksets").joinpath("samples")
    rows = csv.DictReader(samples.joinpath(TRUTH).read_text(encoding="utf-8").splitlines())
    raw = samples.joinpath(SAMPLE).read_bytes()
    if review:
        raw = json.dumps({**json.loads(raw), "review": REVIEW_RULE}).encode()
    return Sample(parse_taskset_bytes(raw, "json"), {row["item"]: row["truth"] for row in rows})


class SimulatedClock:
    """The bot's clock: the simulation sets it to the moment of each tap."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def is_next_step(message: dict[str, Any], *, after: int) -> bool:
    """A newer item with buttons, or the bot's word that there is no more work."""
    if message["message_id"] <= after:
        return False
    body = message.get("text") or message.get("caption") or ""
    if "reply_markup" in message:
        return body.startswith(("Item", "Review"))
    return any(word in body for word in TERMINAL)


class SimulatedWorker:
    """A persona at a phone: reads the item on screen, taps a label, waits for the bot."""

    def __init__(self, user: FakeUser, persona: Persona, sample: Sample, seed: int) -> None:
        self.user, self.persona, self.sample, self.seed = user, persona, sample, seed
        self.name = user.first_name
        self.timing = random.Random(f"{seed}/{self.name}/timing")
        self.item: dict[str, Any] = {}  # the item message on screen
        self.regular_answers = 0
        self.ending = ""  # the bot's last word to this worker

    @property
    def suspended(self) -> bool:
        return "paused" in self.ending

    def reading_ms(self) -> int:
        return self.persona.reading_ms(self.timing)

    async def start(self) -> bool:
        """Open the deep link to the set; True when the bot served an item."""
        await self.user.send_text(f"/start {self.sample.spec.name}")
        return await self._next_step(after=0)

    async def tap(self) -> tuple[str | None, bool]:
        """Answer the item on screen (or review the answer on it); returns the id of the item
        answered (None for a review) and whether the bot served another task."""
        message_id = self.item["message_id"]
        # The body is "Item N" (or "Review"), the tweet and the question, in paragraphs.
        paragraphs = self.item["text"].split("\n\n")
        item_id = self.sample.item_by_text[paragraphs[1]]
        if paragraphs[0] == "Review":
            await self.review(item_id, paragraphs[3].removeprefix("Answer given: "))
            return None, await self._next_step(after=message_id)
        label = self.persona.answer(
            self.sample.truth[item_id],
            self.sample.spec.label_values,
            answer_rng(self.seed, self.name, item_id),
        )
        await self.user.press(self.sample.button_text[label], message_id=message_id)
        self.regular_answers += item_id in self.sample.regular
        return item_id, await self._next_step(after=message_id)

    async def review(self, item_id: str, given: str) -> None:
        """Judge the answer given as the persona would label the item: ✅ when they would
        give the same label, else ❌ and the label they would give."""
        message_id = self.item["message_id"]
        opinion = self.persona.answer(
            self.sample.truth[item_id],
            self.sample.spec.label_values,
            answer_rng(self.seed, f"{self.name}/review", item_id),
        )
        button = self.sample.button_text[opinion]
        if button == given:
            await self.user.press("✅ Correct", message_id=message_id)
            return
        await self.user.press("❌ Wrong", message_id=message_id)
        # The buttons become the other labels (the same message, edited).
        await self.user.wait_for(
            lambda message: (
                message["message_id"] == message_id and button in str(message.get("reply_markup"))
            ),
            timeout=30,
        )
        await self.user.press(button, message_id=message_id)

    async def _next_step(self, *, after: int) -> bool:
        message = await self.user.wait_for(partial(is_next_step, after=after), timeout=30)
        if "reply_markup" in message:
            self.item = message
            return True
        self.ending = message["text"]
        return False


async def crowd_labels(
    workers: list[SimulatedWorker],
    clock: SimulatedClock,
    on_answer: Callable[[SimulatedWorker, str | None], None],
) -> timedelta:
    """Run the crowd in simulated time until nobody gets more items; returns how long it took.

    The tap due first always goes next, and the clock moves on only after the bot's reply, so
    the bot sees the same taps in the same order at the same simulated moments on every run.
    """
    due: list[tuple[int, int, SimulatedWorker]] = []  # (ms after START, tie-break, worker)
    for order, worker in enumerate(workers):
        if await worker.start():
            heapq.heappush(due, (worker.reading_ms(), order, worker))
    elapsed = 0
    while due:
        elapsed, order, worker = heapq.heappop(due)
        clock.now = START + timedelta(milliseconds=elapsed)
        item_id, more = await worker.tap()
        on_answer(worker, item_id)
        if more:
            heapq.heappush(due, (elapsed + worker.reading_ms(), order, worker))
    return timedelta(milliseconds=elapsed)


def run_demo(
    out: Path, *, seed: int = 1, database_url: str | None = None, scenario: str = "labels"
) -> int:
    """Run the experiment on ``database_url`` (by default a fresh SQLite file in ``out``) and
    write the exports to ``out``; returns the exit code. ``scenario`` "transcription" runs
    the typed-answer experiment of ``bot/demo_transcription.py`` instead; "review" runs this
    one with a review stream."""
    out.mkdir(parents=True, exist_ok=True)
    if database_url is None:
        for stale in out.glob("labelbot-demo.db*"):
            stale.unlink()
        database_url = f"sqlite+aiosqlite:///{out / 'labelbot-demo.db'}"
    if scenario == "transcription":
        from bot.demo_transcription import transcription_demo

        return event_loop.run(transcription_demo(out, database_url, seed))
    return event_loop.run(demo(out, database_url, seed, scenario))


async def demo(out: Path, database_url: str, seed: int, scenario: str = "labels") -> int:
    console = Console(width=max(Console().width, 110), highlight=False)
    sample = load_sample(review=scenario == "review")
    spec = sample.spec
    clock = SimulatedClock()
    taskset_id = await load_into_empty(database_url, spec, clock)
    if taskset_id is None:
        return EXIT_NOT_EMPTY

    console.rule("[bold]labelbot demo")
    console.print(
        f"Task set [bold]{spec.title}[/]: {len(sample.regular)} items and "
        f"{len(spec.items) - len(sample.regular)} gold questions, labels "
        f"{', '.join(spec.label_values)}, overlap {spec.overlap.min}, "
        f"{spec.gold_ratio:.0%} of the items served are gold, reward "
        f"{format_money(spec.reward_minor, spec.currency)} per answer. Seed {seed}."
    )
    console.print(f"Crowd of {len(CROWD)}: {describe_crowd()}.")
    if spec.review is not None:
        rule = spec.review
        console.print(
            f"Review stream: {rule.sample:.0%} of the answers and those of items whose "
            f"confidence stays below {rule.below_confidence:.0%} are reviewed by workers with "
            f"{rule.min_answers} answers and {rule.min_gold_accuracy:.0%} gold accuracy, "
            f"{format_money(to_minor(rule.reward, spec.currency), spec.currency)} a review."
        )

    async with FakeTelegram() as telegram:
        application = build_application(
            demo_settings(telegram, database_url),
            migrate=False,
            clock=clock,
            rng=random.Random(seed),
        )
        workers = [
            SimulatedWorker(telegram.user(FIRST_WORKER_ID + n, name), persona, sample, seed)
            for n, (name, persona) in enumerate(CROWD)
        ]
        async with polling(application, poll_timeout=1):
            with Progress(
                TextColumn("labeling"), BarColumn(), MofNCompleteColumn(), console=console
            ) as progress:
                # Answers that reviews find wrong ask for more, as many as they turn out to be.
                wanted = len(sample.regular) * spec.overlap.min if spec.review is None else None
                bar = progress.add_task("answers", total=wanted)

                def on_answer(worker: SimulatedWorker, item_id: str | None) -> None:
                    progress.advance(bar, 1 if item_id in sample.regular else 0)
                    if worker.suspended and wanted:  # each item they labeled asks for one more
                        total = progress.tasks[bar].total or 0
                        progress.update(bar, total=total + worker.regular_answers)

                took = await crowd_labels(workers, clock, on_answer)
            console.print(
                f"The crowd worked for {took.total_seconds() / 60:.0f} simulated minutes."
            )
            services: Services = application.bot_data
            await report(console, services.store, taskset_id, sample, seed, out)
    return 0


async def load_into_empty(
    database_url: str, spec: TaskSetSpec, clock: SimulatedClock
) -> int | None:
    """Migrate the database and load the demo's set; None (and a message) when the database
    holds task sets: worker ids and answers of an earlier run would change this one's numbers."""
    engine = create_engine(database_url)
    await upgrade(engine)
    store = LabelStore(engine, clock=clock)
    try:
        if await store.taskset_progress():
            print(
                "labelbot: the demo needs an empty database, and this one holds task sets",
                file=sys.stderr,
            )
            return None
        return await store.load_taskset(spec)
    finally:
        await store.close()


def demo_settings(telegram: FakeTelegram, database_url: str) -> Settings:
    """Every setting is given, so no LABELBOT_* variable or .env can change the experiment."""
    return Settings(
        **{name: field.default for name, field in Settings.model_fields.items()}
        | {
            "bot_token": telegram.token,
            "database_url": database_url,
            "telegram_base_url": telegram.base_url,
            "telegram_base_file_url": telegram.base_file_url,
            "rate_limit": 0,
        }
    )


def describe_crowd() -> str:
    kinds: dict[str, list[Persona]] = {}
    for _name, persona in CROWD:
        kinds.setdefault(persona.kind, []).append(persona)
    parts = []
    for kind, personas in kinds.items():
        if kind == "spammer":
            fastest, slowest = min(p.seconds for p in personas), max(p.seconds for p in personas)
            parts.append(
                f"{len(personas)} spammers (random or one label, {fastest:g}–{slowest:g} s an item)"
            )
        else:
            persona = personas[0]
            parts.append(
                f"{len(personas)} {kind} ({persona.accuracy:.0%} right, "
                f"about {persona.seconds:g} s an item)"
            )
    return ", ".join(parts)


async def report(
    console: Console, store: LabelStore, taskset_id: int, sample: Sample, seed: int, out: Path
) -> None:
    view = await store.view(taskset_id)
    # The answers as given: the reviewers' corrections count in the export only.
    answers = await store.answers_for_export(taskset_id, reviewed=False)
    scores = await store.leaderboard(taskset_id)
    console.print(leaderboard(scores, answers, sample, view.currency))
    suspended = [score for score in scores if score.status == "suspended"]
    console.print(f"[bold]Suspended ({len(suspended)}):[/]")
    for score in suspended:
        console.print(f"  • {score.name} ({member(score.worker_id)[1].kind}): {score.reason}")

    if sample.spec.review is not None:
        await report_reviews(console, store, taskset_id)

    for fmt in ("csv", "jsonl"):
        with (out / f"{view.name}.{fmt}").open("w", encoding="utf-8", newline="") as stream:
            await export_taskset(store, view.name, stream, fmt=fmt, method="mv")
    with (out / f"{view.name}-answers.csv").open("w", encoding="utf-8", newline="") as stream:
        await export_taskset(store, view.name, stream, raw=True)
    console.print(f"Results written to [bold]{out}/[/] ({view.name}.csv, .jsonl, -answers.csv).")

    # Scored from the file a coordinator gets, so the figure is the export's, not a recomputation.
    with (out / f"{view.name}.jsonl").open(encoding="utf-8") as stream:
        exported = {row["item_id"]: row["label"] for row in map(json.loads, stream)}
    items = await store.items_for_export(taskset_id)
    labels = [label.value for label in view.labels]
    overlap = sample.spec.overlap.min
    suspended_ids = {score.worker_id for score in suspended}
    honest = first_answers(
        [
            honest_answer(answer, sample, seed)
            for answer in answers
            if answer.worker_id not in suspended_ids or is_spammer(answer.worker_id)
        ],
        overlap,
    )
    x = sample.accuracy(majority_vote(items, honest, labels))
    y = sample.accuracy(majority_vote(items, first_answers(answers, overlap), labels))
    z = sample.accuracy(exported)
    console.print(
        f"Majority-vote labels of the {len(sample.regular)} regular items against the hidden "
        "truth:\n"
        "  quality-controls  the export: suspended workers' answers out, their items answered "
        "again\n"
        "  honest-crowd      the same had the spammers been average workers\n"
        "  majority-vote     each item's first three answers, spammers' included, no controls"
    )
    console.print(
        f"accuracy  honest-crowd {x:.1%}  majority-vote {y:.1%}  quality-controls {z:.1%}"
    )


async def report_reviews(console: Console, store: LabelStore, taskset_id: int) -> None:
    """The review stream's state, as `labelbot reviews NAME` tells it."""
    state = await store.reviews.state(taskset_id)
    found_wrong = len(await store.reviews.corrections(taskset_id))
    agreement = f"{state.agreement:.0%}" if state.agreement is not None else "-"
    console.print(
        f"[bold]Reviews:[/] {state.done} done ({found_wrong} answers found wrong), "
        f"{state.gold_done} gold reviews, {state.waiting} waiting; reviewer agreement "
        f"{agreement} over {state.pairs} pairs of verdicts"
    )
    for record in state.reviewers:
        accuracy = f"{record.gold_right}/{record.gold_reviews}" if record.gold_reviews else "-"
        console.print(
            f"  • {record.name} ({member(record.worker_id)[1].kind}): {record.reviews} reviews, "
            f"gold reviews right {accuracy}"
        )


def leaderboard(
    scores: list[WorkerScore], answers: list[StoredAnswer], sample: Sample, currency: str
) -> Table:
    """The bot's leaderboard, with what only the demo knows: each worker's kind and their
    accuracy against the hidden truth."""
    right: dict[int, list[bool]] = {}
    for answer in answers:
        if answer.label is not None:
            hit = sample.truth[answer.item_id] == answer.label
            right.setdefault(answer.worker_id, []).append(hit)
    table = Table(title="Leaderboard", title_justify="left")
    for column in ("#", "worker", "answers", "gold", "gold acc.", "true acc.", "median s"):
        table.add_column(column, justify="left" if column == "worker" else "right")
    table.add_column("earned", justify="right")
    table.add_column("status")
    for rank, score in enumerate(scores, 1):
        hits = right.get(score.worker_id, [])
        table.add_row(
            str(rank),
            f"{score.name} ({member(score.worker_id)[1].kind})",
            str(score.answers),
            f"{score.gold_correct}/{score.gold_answers}",
            f"{score.gold_accuracy:.0%}",
            f"{sum(hits) / len(hits):.0%}" if hits else "-",
            f"{score.median_seconds:.1f}" if score.median_seconds is not None else "-",
            format_money(score.earned_minor, currency),
            str(score.status),
        )
    return table


def is_spammer(worker_id: int) -> bool:
    return member(worker_id)[1].kind == "spammer"


def first_answers(answers: list[StoredAnswer], overlap: int) -> list[StoredAnswer]:
    """The first ``overlap`` labels of each item: what it gets when nobody is suspended."""
    seen: Counter[str] = Counter()
    first = []
    for answer in answers:  # oldest first
        if answer.label is not None:
            seen[answer.item_id] += 1
            if seen[answer.item_id] <= overlap:
                first.append(answer)
    return first


def honest_answer(answer: StoredAnswer, sample: Sample, seed: int) -> StoredAnswer:
    """The answer, or in a spammer's seat what an average worker answers there."""
    if not is_spammer(answer.worker_id):
        return answer
    name = member(answer.worker_id)[0]
    truth = sample.truth[answer.item_id]
    label = AVERAGE.answer(truth, sample.spec.label_values, answer_rng(seed, name, answer.item_id))
    return dataclasses.replace(answer, label=label)


def majority_vote(
    items: list[StoredItem], answers: list[StoredAnswer], labels: list[str]
) -> dict[str, str]:
    """Plain majority vote over the given answers: no gold, nobody left out."""
    coded = code_answers(items, answers, labels, quality_controlled=False)
    result = aggregate(coded.answers, "mv").labels
    return {item.item_id: labels[k] for item, k in zip(items, result, strict=True) if k >= 0}
