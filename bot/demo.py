"""``labelbot demo``: the whole loop offline, through the real Application.

An embedded fake Telegram, the sample sentiment task set with gold items, and a simulated crowd
(careful, average and careless workers, and spammers) tapping buttons like people do. At the end:
who was suspended and why, the leaderboard, per-worker accuracy, and how close the aggregated
labels come to the hidden truth with and without the quality controls.
"""

from __future__ import annotations

import asyncio
import csv
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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
from storage.exports import code_answers, export_taskset, quality_report
from storage.migrate import upgrade
from storage.store import LabelStore
from tasksets.aggregation import aggregate
from tasksets.money import format_money
from tasksets.parsing import parse_taskset_bytes
from tasksets.quality import QualityRules

SAMPLE = "sentiment.json"
TRUTH = "sentiment_truth.csv"
TERMINAL = ("All done", "paused", "can't offer you")
DEMO_RULES = QualityRules(
    min_gold_answers=3, min_median_seconds=0.25, min_answers_for_speed=8, dominant_window=10
)


@dataclass(frozen=True)
class Persona:
    name: str
    kind: str
    accuracy: float  # chance of tapping the true label
    think_seconds: float  # how long they read an item
    favourite: str | None = None  # a spammer's one label


CROWD = [
    Persona("Alice", "careful", 0.96, 0.40),
    Persona("Bashir", "careful", 0.92, 0.35),
    Persona("Chen", "average", 0.82, 0.30),
    Persona("Dana", "average", 0.78, 0.30),
    Persona("Emeka", "careless", 0.55, 0.30),
    Persona("Farah", "average", 0.85, 0.35),
    Persona("Gus", "spammer", 0.0, 0.02, favourite="positive"),
    Persona("Hiro", "spammer", 0.0, 0.02, favourite="neutral"),
]


def sample_bytes(name: str) -> bytes:
    return resources.files("tasksets").joinpath("samples", name).read_bytes()


def hidden_truth() -> dict[str, str]:
    rows = csv.DictReader(sample_bytes(TRUTH).decode().splitlines())
    return {row["item"]: row["truth"] for row in rows}


def is_next_step(message: dict[str, Any], *, after: int) -> bool:
    """A newer item with buttons, or the bot's word that there is no more work."""
    if message["message_id"] <= after:
        return False
    body = message.get("text") or message.get("caption") or ""
    if "reply_markup" in message:
        return body.startswith("Item")
    return any(word in body for word in TERMINAL)


class SimulatedWorker:
    """Reads the newest item, thinks, taps; stops when the bot says there is no more work."""

    def __init__(self, user: FakeUser, persona: Persona, truth_by_text: dict[str, str], seed: int):
        self.user, self.persona, self.truth_by_text = user, persona, truth_by_text
        self.rng = random.Random(seed)
        self.taps = 0
        self.ending = ""

    def choose(self, message: dict[str, Any]) -> str:
        buttons = [b for row in message["reply_markup"]["inline_keyboard"] for b in row]
        label_buttons = buttons[:-2]  # the last two are Skip and Not sure
        if self.persona.favourite is not None:
            wanted = self.persona.favourite
        else:
            body = message.get("text") or message.get("caption") or ""
            truth = next((t for text, t in self.truth_by_text.items() if text in body), None)
            other = [b for b in label_buttons if b["callback_data"]]
            if truth is None or self.rng.random() > self.persona.accuracy:
                return str(self.rng.choice(other)["text"])
            wanted = truth
        # Button texts carry an emoji; the value is the last word, lower-cased.
        for button in label_buttons:
            if button["text"].split()[-1].lower() == wanted:
                return str(button["text"])
        return str(label_buttons[0]["text"])

    async def run(self, on_tap: Callable[[str], None]) -> None:
        await self.user.send_text("/start")
        seen = 0
        while True:
            message = await self.user.wait_for(partial(is_next_step, after=seen), timeout=30)
            seen = message["message_id"]
            if "reply_markup" not in message:
                self.ending = message["text"]
                return
            await asyncio.sleep(self.persona.think_seconds * self.rng.uniform(0.7, 1.3))
            await self.user.press(self.choose(message), message_id=seen)
            self.taps += 1
            on_tap(message.get("text") or message.get("caption") or "")


def run_demo(out: Path, *, seed: int = 1) -> int:
    """Start from an empty demo database in ``out`` and run the loop; returns the exit code."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("labelbot-demo.db*"):
        stale.unlink()
    return event_loop.run(demo(out, f"sqlite+aiosqlite:///{out / 'labelbot-demo.db'}", seed))


async def demo(out: Path, db_url: str, seed: int) -> int:
    console = Console(width=max(Console().width, 110))
    spec = parse_taskset_bytes(sample_bytes(SAMPLE), "json")
    spec = spec.model_copy(update={"gold_ratio": 0.3, "quality": DEMO_RULES})
    truth = hidden_truth()
    truth_by_text = {item.text or "": truth[item.id] for item in spec.items}

    console.rule("[bold]labelbot demo")
    console.print(
        f"Task set [bold]{spec.title}[/]: {len(spec.items)} items "
        f"({sum(i.gold is not None for i in spec.items)} gold), labels "
        f"{', '.join(spec.label_values)}, overlap {spec.overlap.min}, reward "
        f"{format_money(spec.reward_minor, spec.currency)} per answer."
    )
    engine = create_engine(db_url)
    await upgrade(engine)
    store = LabelStore(engine)
    taskset_id = await store.load_taskset(spec)
    await store.close()

    async with FakeTelegram() as telegram:
        settings = Settings(
            bot_token=telegram.token,
            database_url=db_url,
            telegram_base_url=telegram.base_url,
            telegram_base_file_url=telegram.base_file_url,
            rate_limit=0,
        )
        application = build_application(settings, migrate=False, rng=random.Random(seed))
        workers = [
            SimulatedWorker(telegram.user(1000 + n, p.name), p, truth_by_text, seed + n)
            for n, p in enumerate(CROWD)
        ]
        console.print(
            "Crowd: "
            + ", ".join(f"{w.persona.name} ({w.persona.kind})" for w in workers)
            + " — labeling through the real bot on a fake Telegram…"
        )
        gold_texts = {item.text for item in spec.items if item.gold is not None}
        expected = (len(spec.items) - len(gold_texts)) * spec.overlap.min
        async with polling(application, poll_timeout=1):
            with Progress(
                TextColumn("labeling"), BarColumn(), MofNCompleteColumn(), console=console
            ) as progress:
                task = progress.add_task("taps", total=expected)

                def on_tap(body: str) -> None:
                    if any(text and text in body for text in gold_texts):
                        return
                    # Items a suspended spammer labeled ask for replacement answers.
                    done = progress.tasks[task].completed + 1
                    progress.update(task, completed=done, total=max(done, expected))

                await asyncio.gather(*(w.run(on_tap) for w in workers))
            services: Services = application.bot_data
            await report(console, services.store, taskset_id, workers, truth, out)
    return 0


async def report(
    console: Console,
    store: LabelStore,
    taskset_id: int,
    workers: list[SimulatedWorker],
    truth: dict[str, str],
    out: Path,
) -> None:
    view = await store.view(taskset_id)
    scores = await store.worker_scores(taskset_id)
    quality = await quality_report(store, taskset_id)
    personas = {1000 + n: w.persona for n, w in enumerate(workers)}
    answers = await store.answers_for_export(taskset_id)
    right: dict[int, list[bool]] = {}
    for answer in answers:
        if answer.label is not None:
            right.setdefault(answer.worker_id, []).append(truth.get(answer.item_id) == answer.label)

    table = Table(title="Leaderboard and worker quality", title_justify="left")
    for column in (
        "#",
        "worker",
        "answers",
        "gold",
        "gold acc.",
        "true acc.",
        "agrees",
        "median s",
        "earned",
        "status",
    ):
        table.add_column(column, justify="left" if column in {"worker", "status"} else "right")
    ranked = sorted(scores, key=lambda s: (s.status != "active", -s.earned_minor))
    for rank, score in enumerate(ranked, 1):
        hits = right.get(score.worker_id, [])
        agrees = quality.agreement.get(score.worker_id)
        table.add_row(
            str(rank),
            f"{score.name} ({personas[score.worker_id].kind})",
            str(score.answers),
            f"{score.gold_correct}/{score.gold_answers}",
            f"{score.gold_accuracy:.0%}",
            f"{sum(hits) / len(hits):.0%}" if hits else "-",
            f"{agrees:.0%}" if agrees is not None else "-",
            f"{score.median_seconds:.2f}" if score.median_seconds is not None else "-",
            format_money(score.earned_minor, view.currency),
            str(score.status),
        )
    console.print(table)

    suspended = [s for s in scores if s.status == "suspended"]
    console.print(f"[bold]Suspended ({len(suspended)}):[/]")
    for score in suspended:
        console.print(f"  • {score.name} ({personas[score.worker_id].kind}): {score.reason}")

    items = await store.items_for_export(taskset_id)
    labels = [label.value for label in view.labels]
    regular = [i for i, item in enumerate(items) if item.gold is None]

    def accuracy(controlled: bool, method: Any) -> float:
        coded = code_answers(items, answers, labels, quality_controlled=controlled)
        result = aggregate(coded.answers, method, coded.gold if controlled else None)
        hits = [
            labels[result.labels[i]] == truth[items[i].item_id]
            for i in regular
            if result.labels[i] >= 0
        ]
        return sum(hits) / len(regular)

    console.print(
        f"Aggregated labels vs hidden truth ({len(regular)} non-gold items): "
        f"majority vote of everyone [bold]{accuracy(False, 'mv'):.0%}[/], "
        f"with quality controls (suspended workers out, gold-clamped Dawid-Skene) "
        f"[bold]{accuracy(True, 'ds'):.0%}[/]. Krippendorff's alpha {quality.alpha:.2f}."
    )
    for fmt in ("csv", "jsonl"):
        path = out / f"{view.name}.{fmt}"
        with path.open("w", encoding="utf-8", newline="") as stream:
            await export_taskset(store, view.name, stream, fmt=fmt, method="ds")
    with (out / f"{view.name}-answers.csv").open("w", encoding="utf-8", newline="") as stream:
        await export_taskset(store, view.name, stream, raw=True)
    console.print(f"Results written to [bold]{out}/[/] ({view.name}.csv, .jsonl, -answers.csv).")
