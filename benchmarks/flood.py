"""Flood benchmark: four honest workers labeling alone, and while one user floods the bot.

``labelbot run`` with its default configuration (PTB's AIORateLimiter at 30 requests/s, the
flood guard at 3 updates/s per user, SQLite, long polling) is a process of its own; the fake Bot
API and the simulated people run in this one, as in ``answer_loop.py``, whose helpers this uses.

Phases, alternating within each round (the order flips every round):

  quiet  4 workers tap a label every 0.5 s (2 taps/s each, a fast human pace) on their item
  flood  the same, while one more user sends 60 updates/s: a third commands (/start, /help,
         /next, /me, ...), a third chatter, a third forged button presses

Contenders, a fresh bot process each per round:

  a  labelbot as shipped
  b  the same with the guard off (``LABELBOT_FLOOD_RATE=0``): what the guard holds off

Measured per phase: the honest workers' time from a tap to the next item (p50, p95), the bot's
messages to the flooder per second (its callback answers apart: every dropped tap is answered),
and the bot's CPU (utime+stime). Each phase keeps its minimum and median over the rounds; the
flooder's replies keep their maximum, as their target is a ceiling.

Target for (a): p95 under flood within 1.5x of the quiet p95 or at most 0.3 s above it, and at
most 2 replies a second to the flooder.

    .venv/bin/python benchmarks/flood.py [--rounds 3] [--seconds 20] [--only ab]

Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from answer_loop import (
    LABELBOT_RUN,
    LABELS,
    START_TIMEOUT,
    TOKEN,
    BenchError,
    BotProcess,
    bot_process,
    cpu_seconds,
    environment,
    first_item,
    item_after,
    load_taskset,
    machine,
    progress,
    write_taskset,
)
from load import percentile

from bot.fakegram import FakeTelegram, FakeUser, JSONDict
from handlers.texts import SLOW_DOWN, SLOW_DOWN_ALERT

HONEST_WORKERS = 4
TAP_PERIOD = 0.5  # 2 taps/s
FLOOD_PER_SECOND = 60
FLOOD_COMMANDS = ("/start", "/help", "/next", "/me", "/leaderboard", "/earnings", "/guidelines")
WARMUP_SECONDS = 3.0
CALM_SECONDS = 2.0  # between phases: the flooder's bucket is full when its flood begins
REPLY_TIMEOUT = 120.0  # without the guard, replies queue behind the rate limiter
IDLE_TIMEOUT = 300.0
TARGET_RATIO = 1.5
TARGET_SLACK = 0.3  # seconds
TARGET_REPLIES = 2.0  # per second


@dataclass(frozen=True, slots=True)
class Contender:
    key: str
    title: str
    flood_rate: str | None  # LABELBOT_FLOOD_RATE, None: the default


CONTENDERS = (
    Contender("a", "labelbot as shipped", None),
    Contender("b", "labelbot, flood guard off", "0"),
)
PHASES = ("quiet", "flood")


@dataclass(frozen=True, slots=True)
class Sample:
    """One phase of one round."""

    latencies: list[float]
    seconds: float
    bot_cpu: float
    flooder_replies: int
    flooder_answers: int
    flooder_notices: int
    honest_slowed: int
    calls: Counter[str]  # Bot API calls by method, the flooder's and everyone else's

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.50)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 0.95)

    @property
    def replies_per_second(self) -> float:
        return self.flooder_replies / self.seconds

    @property
    def answers_per_second(self) -> float:
        """The flooder's callback queries answered per second."""
        return self.flooder_answers / self.seconds

    @property
    def cpu_per_second(self) -> float:
        """Bot CPU seconds per second of the phase (1.0: one core busy)."""
        return self.bot_cpu / self.seconds


@dataclass(slots=True)
class Rounds:
    """One contender's phase over the rounds."""

    samples: list[Sample] = field(default_factory=list)

    def low_and_median(self, metric: Callable[[Sample], float]) -> tuple[float, float]:
        values = [metric(sample) for sample in self.samples]
        return min(values), statistics.median(values)

    def high(self, metric: Callable[[Sample], float]) -> float:
        return max(metric(sample) for sample in self.samples)


# -- the people -----------------------------------------------------------------------------


async def label_at_pace(
    user: FakeUser, item: JSONDict, until: float, offset: float
) -> tuple[JSONDict, list[float]]:
    """Tap every TAP_PERIOD (later if the next item is late) until ``until``; returns the
    newest item and each tap's time to the next item."""
    latencies: list[float] = []
    next_tap = time.perf_counter() + offset
    while True:
        await asyncio.sleep(max(0.0, next_tap - time.perf_counter()))
        tapped = time.perf_counter()
        if tapped >= until:
            return item, latencies
        label = LABELS[len(latencies) % len(LABELS)]
        await user.press(label, message_id=item["message_id"])
        item = await user.wait_for(item_after(item["message_id"]), timeout=REPLY_TIMEOUT)
        latencies.append(time.perf_counter() - tapped)
        next_tap = tapped + TAP_PERIOD


async def flood(user: FakeUser, item: JSONDict, until: float) -> None:
    """FLOOD_PER_SECOND updates a second until ``until``: commands, chatter, forged presses."""
    commands = itertools.cycle(FLOOD_COMMANDS)
    start = time.perf_counter()
    for n in itertools.count():
        due = start + n / FLOOD_PER_SECOND
        if due >= until:
            return
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        match n % 3:
            case 0:
                await user.send_text(next(commands))
            case 1:
                await user.send_text(f"hey bot, are you there? ({n})")
            case _:  # well-formed, naming no lease: without the guard, a lookup each
                await user.press_data(f"a:{secrets.token_urlsafe(12)}:0", item["message_id"])


# -- one bot process ------------------------------------------------------------------------


@dataclass(slots=True)
class Crowd:
    telegram: FakeTelegram
    bot: BotProcess
    workers: list[FakeUser]
    items: list[JSONDict]
    flooder: FakeUser
    flooder_item: JSONDict

    async def labeling(self, until: float) -> list[float]:
        """All workers label until ``until``, their taps spread over the period."""
        results = await asyncio.gather(
            *(
                label_at_pace(user, item, until, offset=n * TAP_PERIOD / len(self.workers))
                for n, (user, item) in enumerate(zip(self.workers, self.items, strict=True))
            )
        )
        self.items = [item for item, _ in results]
        return [latency for _, latencies in results for latency in latencies]

    def slowed(self) -> int:
        """Honest taps answered with "slow down" so far."""
        return sum(a.get("text") == SLOW_DOWN_ALERT for u in self.workers for a in u.alerts)

    async def phase(self, flooded: bool, seconds: float) -> Sample:
        await asyncio.sleep(CALM_SECONDS)
        calls_before, answers_before = len(self.telegram.calls), len(self.flooder.alerts)
        notices_before, slowed_before = self.flooder.texts().count(SLOW_DOWN), self.slowed()
        cpu_before = cpu_seconds(self.bot.pid)
        until = time.perf_counter() + seconds
        flooding = asyncio.ensure_future(
            flood(self.flooder, self.flooder_item, until) if flooded else asyncio.sleep(0)
        )
        try:
            latencies = await self.bot.guarded(self.labeling(until), "a phase")
            await flooding
        finally:
            flooding.cancel()
        # The phase is over when the bot has done everything it was sent (queued replies too).
        await self.telegram.wait_idle(timeout=IDLE_TIMEOUT, quiet=0.05)
        bot_cpu = cpu_seconds(self.bot.pid) - cpu_before
        calls = self.telegram.calls[calls_before:]
        replies = sum(call.params.get("chat_id") == self.flooder.id for call in calls)
        return Sample(
            latencies=latencies,
            seconds=seconds,
            bot_cpu=bot_cpu,
            flooder_replies=replies,
            flooder_answers=len(self.flooder.alerts) - answers_before,
            flooder_notices=self.flooder.texts().count(SLOW_DOWN) - notices_before,
            honest_slowed=self.slowed() - slowed_before,
            calls=Counter(call.method for call in calls),
        )


async def run(
    contender: Contender,
    database_url: str,
    order: Sequence[str],
    seconds: float,
    user_ids: Iterator[int],
    log_path: Path,
) -> dict[str, Sample]:
    """Start the contender, warm up, and measure the phases in ``order``."""
    async with FakeTelegram(TOKEN) as telegram:
        env = environment(telegram, database_url, webhook=False)
        # The configuration under test is the default one: the rate limiter and the guard on.
        del env["LABELBOT_RATE_LIMIT"], env["LABELBOT_FLOOD_RATE"]
        if contender.flood_rate is not None:
            env["LABELBOT_FLOOD_RATE"] = contender.flood_rate
        label = f"({contender.key}) {contender.title}"
        async with bot_process(LABELBOT_RUN, env, log_path, label) as bot:
            people = [telegram.user(next(user_ids)) for _ in range(HONEST_WORKERS + 1)]
            items = await bot.guarded(
                asyncio.gather(*(first_item(user) for user in people)), "first items", START_TIMEOUT
            )
            crowd = Crowd(telegram, bot, people[:-1], items[:-1], people[-1], items[-1])
            await bot.guarded(crowd.labeling(time.perf_counter() + WARMUP_SECONDS), "warm-up")
            return {phase: await crowd.phase(phase == "flood", seconds) for phase in order}


# -- report ---------------------------------------------------------------------------------


def describe(contender: Contender, phase: str, sample: Sample) -> str:
    return (
        f"({contender.key}) {phase:<5}: tap->next item p50 {sample.p50:.3f} s, "
        f"p95 {sample.p95:.3f} s over {len(sample.latencies)} taps; flooder "
        f"{sample.replies_per_second:.2f} replies/s, {sample.flooder_answers} callback answers, "
        f"{sample.flooder_notices} slow-down notice(s); honest taps slowed {sample.honest_slowed}; "
        f"bot CPU {sample.cpu_per_second:.0%} of a core; Bot API calls/s: "
        + ", ".join(
            f"{method} {n / sample.seconds:.1f}" for method, n in sample.calls.most_common()
        )
    )


def report(results: dict[tuple[str, str], Rounds], args: argparse.Namespace) -> str:
    lines = [
        f"{date.today().isoformat()}, {machine()}; {args.rounds} round(s) of {args.seconds:.0f} s "
        f"phases, {HONEST_WORKERS} workers at {1 / TAP_PERIOD:.0f} taps/s, a flooder at "
        f"{FLOOD_PER_SECOND} updates/s.",
        "",
        "| contender | phase | p50 min / median | p95 min / median | flooder replies/s max "
        "| flooder callback answers/s max | bot CPU, share of a core, min / median |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for contender in CONTENDERS:
        for phase in PHASES:
            rounds = results.get((contender.key, phase))
            if rounds is None:
                continue
            p50 = rounds.low_and_median(lambda s: s.p50)
            p95 = rounds.low_and_median(lambda s: s.p95)
            cpu = rounds.low_and_median(lambda s: s.cpu_per_second)
            lines.append(
                f"| ({contender.key}) {contender.title} | {phase} "
                f"| {p50[0]:.3f} / {p50[1]:.3f} s | {p95[0]:.3f} / {p95[1]:.3f} s "
                f"| {rounds.high(lambda s: s.replies_per_second):.2f} "
                f"| {rounds.high(lambda s: s.answers_per_second):.1f} "
                f"| {cpu[0]:.0%} / {cpu[1]:.0%} |"
            )
    quiet, flooded = results.get(("a", "quiet")), results.get(("a", "flood"))
    if quiet and flooded:
        lines.append("")
        calm, busy = quiet.low_and_median(lambda s: s.p95), flooded.low_and_median(lambda s: s.p95)
        for summary, calm_p95, busy_p95 in zip(("minimums", "medians"), calm, busy, strict=True):
            met = busy_p95 <= TARGET_RATIO * calm_p95 or busy_p95 - calm_p95 <= TARGET_SLACK
            lines.append(
                f"- (a) p95 under flood / quiet, on the {summary}: {busy_p95 / calm_p95:.2f} "
                f"({busy_p95 - calm_p95:+.3f} s; target <= {TARGET_RATIO} or "
                f"<= +{TARGET_SLACK} s: {'met' if met else 'not met'})"
            )
        replies = flooded.high(lambda s: s.replies_per_second)
        lines.append(
            f"- (a) flooder replies: at most {replies:.2f}/s (target <= {TARGET_REPLIES}: "
            f"{'met' if replies <= TARGET_REPLIES else 'not met'})"
        )
        slowed = max(s.honest_slowed for r in (quiet, flooded) for s in r.samples)
        lines.append(f"- (a) honest taps answered with slow down: {slowed}")
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------


async def benchmark(args: argparse.Namespace, workdir: Path) -> str:
    contenders = [c for c in CONTENDERS if c.key in args.only]
    taps_per_run = HONEST_WORKERS * (WARMUP_SECONDS + len(PHASES) * args.seconds) / TAP_PERIOD
    taskset = write_taskset(workdir / "taskset.json", int(taps_per_run * 1.2 * args.rounds) + 50)
    urls = {}
    for contender in contenders:
        urls[contender.key] = f"sqlite+aiosqlite:///{workdir / f'{contender.key}.db'}"
        await load_taskset(urls[contender.key], taskset)
    user_ids = itertools.count(200_001)
    results: dict[tuple[str, str], Rounds] = {}
    for round_index in range(args.rounds):
        order = PHASES if round_index % 2 == 0 else PHASES[::-1]
        shift = round_index % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            log_path = workdir / f"{contender.key}-{round_index + 1}.log"
            samples = await run(
                contender, urls[contender.key], order, args.seconds, user_ids, log_path
            )
            for phase, sample in samples.items():
                progress(f"round {round_index + 1}: " + describe(contender, phase, sample))
                results.setdefault((contender.key, phase), Rounds()).samples.append(sample)
    return report(results, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--only", default="ab", help="contender keys to run, e.g. a")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flood-") as workdir:
        try:
            print(asyncio.run(benchmark(args, Path(workdir))))
        except BenchError as error:
            sys.exit(f"flood: {error}")


if __name__ == "__main__":
    main()
