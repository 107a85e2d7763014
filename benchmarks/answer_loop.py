"""CPU per answered tap: labelbot against a bare python-telegram-bot bot, each in its own process.

The fake Bot API (``bot.fakegram``) runs in this process; every contender is a separate bot
process, so its CPU time can be read from ``/proc/<pid>/stat``. Simulated workers tap a label on
the newest item as soon as it arrives; per tap the bot answers the callback query, edits the
item and sends the next one. Contenders:

  a  bare PTB bot (``benchmarks/bare_bot.py``) on PTB's httpx transport
  b  the same bare bot on labelbot's aiohttp transport
  c  ``labelbot run`` on SQLite (long polling)
  d  ``labelbot run`` on PostgreSQL (a fresh database, dropped afterwards); the PostgreSQL
     server's CPU over the same taps is shown beside it
  e  ``labelbot run`` on SQLite in webhook mode (the fake POSTs updates to labelbot's server)
  f  the bare bot (b) behind PTB's own webhook server (tornado)
  g  the bare bot (b) behind labelbot's aiohttp webhook server
  h  ``labelbot run`` on SQLite with the card layout (one message edited from item to item)
     and PTB's default rate limiter on (30 calls with a chat_id a second)
  i  the same with the chat layout, for comparison
  j  (i) with a review rule that samples a fifth of the answers (``REVIEW_SAMPLE``)
  k  (j) that also reviews items whose confidence stays low (``REVIEW_SAMPLE_AND_CONFIDENCE``)

With the limiter on, answers/s is capped by the calls with a chat_id per answer: run h and i
with 8 workers tapping as fast as items arrive (``--only hi --workers 8``), and paced, each
worker tapping 1.25 times a second (``--only bh --workers 8 --pace 1.25``), to compare CPU.
Run i, j and k the same two ways (``--only ijk``) for what choosing answers for review costs.

Each contender runs with 1 and with 4 concurrent workers in one bot process per round (startup
and 5 warm-up taps per worker are not measured), rounds alternate the contenders, and each keeps
its lowest CPU per answer and its best answers/s.

    .venv/bin/python benchmarks/answer_loop.py [--taps 300] [--rounds 3] [--only abcdefg]
    .venv/bin/python benchmarks/answer_loop.py --profile [d]   # (c) or another, sampled by py-spy

Linux only (``/proc``). The task set has no gold items and overlap 1; its speed rule is relaxed,
since these workers tap within milliseconds and would be suspended as too fast to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal, TypeVar

import telegram
from sqlalchemy import update
from sqlalchemy.engine import make_url

from bot.fakegram import FakeTelegram, FakeUser, JSONDict
from storage.engine import create_engine, execute_autocommit
from storage.models import TaskSet
from tasksets.quality import QualityRules
from tasksets.review import ReviewRule

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TOKEN = "123456:BENCH-TOKEN"
TASKSET_NAME = "bench"
LABELS = ("positive", "negative", "neutral")  # the bare bot's labels too
WARMUP_TAPS = 5
START_TIMEOUT = 90.0  # process start, migrations and the first item
REPLY_TIMEOUT = 30.0  # one tap's next item
STOP_TIMEOUT = 20.0
LOAD_TIMEOUT = 300.0
LOG_TAIL_LINES = 30
SAMPLES_PER_SECOND = 250
SPY_ATTACH_SECONDS = 1.0
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LABELBOT_RUN = (PYTHON, "-m", "bot.cli", "run")
OWN_CODE = ("bot/", "handlers/", "storage/", "tasksets/")  # as py-spy names files
# Without gold items no worker reaches the reviewer level (its smoothed gold accuracy stays at
# the prior's 0.8, under min_gold_accuracy), so chosen answers queue up and nobody is served a
# review: what these rules add to an answer is choosing it. With overlap 1 an item's confidence
# is its one answer's 0.8, above 0.5: the second rule scores every item but queues none for it.
REVIEW_SAMPLE = ReviewRule(sample=0.2)
REVIEW_SAMPLE_AND_CONFIDENCE = ReviewRule(sample=0.2, below_confidence=0.5)


class BenchError(RuntimeError):
    """A contender failed to start, answer or stop; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Contender:
    key: str
    title: str
    command: tuple[str, ...]
    database: Literal["none", "sqlite", "postgres"] = "none"
    webhook: bool = False
    layout: Literal["chat", "card"] = "chat"
    rate_limited: bool = False  # PTB's AIORateLimiter with labelbot's defaults
    review: ReviewRule | None = None  # the task set's review rule


CONTENDERS = (
    Contender("a", "bare PTB, httpx", (PYTHON, "benchmarks/bare_bot.py", "--transport", "httpx")),
    Contender(
        "b", "bare PTB, aiohttp", (PYTHON, "benchmarks/bare_bot.py", "--transport", "aiohttp")
    ),
    Contender("c", "labelbot, SQLite", LABELBOT_RUN, "sqlite"),
    Contender("d", "labelbot, PostgreSQL", LABELBOT_RUN, "postgres"),
    Contender("e", "labelbot, SQLite, webhook", LABELBOT_RUN, "sqlite", webhook=True),
    # Which webhook server to use: the same bare bot behind PTB's (tornado) and labelbot's.
    Contender(
        "f",
        "bare PTB, aiohttp, PTB webhook",
        (PYTHON, "benchmarks/bare_bot.py", "--transport", "aiohttp", "--webhook", "ptb"),
        webhook=True,
    ),
    Contender(
        "g",
        "bare PTB, aiohttp, labelbot webhook",
        (PYTHON, "benchmarks/bare_bot.py", "--transport", "aiohttp", "--webhook", "aiohttp"),
        webhook=True,
    ),
    Contender(
        "h",
        "labelbot, SQLite, card, limiter",
        LABELBOT_RUN,
        "sqlite",
        layout="card",
        rate_limited=True,
    ),
    Contender("i", "labelbot, SQLite, chat, limiter", LABELBOT_RUN, "sqlite", rate_limited=True),
    Contender(
        "j",
        "labelbot, SQLite, chat, limiter, review sample",
        LABELBOT_RUN,
        "sqlite",
        rate_limited=True,
        review=REVIEW_SAMPLE,
    ),
    Contender(
        "k",
        "labelbot, SQLite, chat, limiter, review sample + confidence",
        LABELBOT_RUN,
        "sqlite",
        rate_limited=True,
        review=REVIEW_SAMPLE_AND_CONFIDENCE,
    ),
)
BASELINE = "a"
TARGETS = ("c", "d")
TARGET_RATIO = 0.5
WITHOUT_REVIEW = "i"  # the contenders with a review rule, without it


# -- CPU time from /proc ------------------------------------------------------------------


def _stat_fields(stat_path: Path) -> list[str]:
    """The fields after the command name (which may contain spaces) of a /proc stat file."""
    content = stat_path.read_text()
    return content[content.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU of a process (all its threads), or of one of its threads."""
    path = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat")
    fields = _stat_fields(path)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def postgres_cpu_seconds() -> float:
    """User + system CPU of every running ``postgres`` process (server, backends, helpers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            content = stat.read_text()
        except OSError:  # the process ended between listing and reading
            continue
        if content[content.index("(") + 1 : content.rindex(")")] == "postgres":
            fields = content[content.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured phase: ``answers`` taps by all workers together."""

    answers: int
    wall: float
    bot_cpu: float
    main_thread_cpu: float
    postgres_cpu: float | None
    driver_cpu: float
    limited_calls: int  # Bot API calls with a chat_id, which a rate limiter counts

    def per_answer_ms(self, seconds: float) -> float:
        return seconds / self.answers * 1000


@dataclass(slots=True)
class Best:
    """The best of a contender's rounds at one worker count (and every round's CPU)."""

    cpu_ms: float = math.inf
    rate: float = 0.0
    postgres_ms: float | None = None
    rounds_cpu_ms: list[float] = field(default_factory=list)
    limited_per_answer: float = 0.0

    def add(self, sample: Sample) -> None:
        self.limited_per_answer = sample.limited_calls / sample.answers
        cpu_ms = sample.per_answer_ms(sample.bot_cpu)
        self.rounds_cpu_ms.append(cpu_ms)
        self.cpu_ms = min(self.cpu_ms, cpu_ms)
        self.rate = max(self.rate, sample.answers / sample.wall)
        if sample.postgres_cpu is not None:
            server_ms = sample.per_answer_ms(sample.postgres_cpu)
            self.postgres_ms = min(self.postgres_ms or math.inf, server_ms)


# -- the bot process ----------------------------------------------------------------------


@dataclass(slots=True)
class BotProcess:
    process: asyncio.subprocess.Process
    log_path: Path
    label: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-LOG_TAIL_LINES:]) or "(empty log)"

    def failure(self, what: str, problem: str) -> BenchError:
        return BenchError(
            f"{self.label}: {what}: {problem}\n--- end of its log ({self.log_path}) ---\n"
            + self.log_tail()
        )

    async def guarded(self, work: Awaitable[T], what: str, timeout: float | None = None) -> T:  # noqa: ASYNC109
        """``work``'s result, unless the bot exits or ``timeout`` passes first."""
        task = asyncio.ensure_future(work)
        exited = asyncio.ensure_future(self.process.wait())
        try:
            done, _ = await asyncio.wait(
                {task, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            exited.cancel()
        if task in done:
            try:
                return task.result()
            except (TimeoutError, LookupError) as error:  # FakeUser's own waits and presses
                raise self.failure(what, str(error)) from error
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if exited in done:
            raise self.failure(what, f"the bot exited with code {self.process.returncode}")
        raise self.failure(what, f"nothing happened within {timeout:.0f} s")

    async def stop(self) -> None:
        """SIGTERM (labelbot and PTB stop cleanly on it), then SIGKILL if it hangs."""
        if self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise self.failure(
                "stop", f"still running {STOP_TIMEOUT:.0f} s after SIGTERM"
            ) from None


@contextlib.asynccontextmanager
async def bot_process(
    command: Sequence[str], env: dict[str, str], log_path: Path, label: str
) -> AsyncIterator[BotProcess]:
    """A started bot process, always stopped (and killed if need be) on the way out."""
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    bot = BotProcess(process, log_path, label)
    try:
        yield bot
    finally:
        await bot.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(
    telegram: FakeTelegram, database_url: str | None, webhook: bool, rate_limited: bool = False
) -> dict[str, str]:
    """The bot's environment: the parent's minus any LABELBOT_ settings, plus the fake's."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LABELBOT_")}
    env |= {
        "LABELBOT_BOT_TOKEN": TOKEN,
        "LABELBOT_TELEGRAM_BASE_URL": telegram.base_url,
        "LABELBOT_TELEGRAM_BASE_FILE_URL": telegram.base_file_url,
        "LABELBOT_RATE_LIMIT": "0",  # the limiter would cap the answers per second
        "LABELBOT_FLOOD_RATE": "0",  # its workers tap as fast as the bot answers
    }
    if rate_limited:
        del env["LABELBOT_RATE_LIMIT"]
    if database_url is not None:
        env["LABELBOT_DATABASE_URL"] = database_url
    if webhook:
        port = free_port()
        env |= {
            "LABELBOT_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
            "LABELBOT_WEBHOOK_SECRET": secrets.token_urlsafe(16),
            "LABELBOT_LISTEN": "127.0.0.1",
            "LABELBOT_PORT": str(port),
        }
    return env


# -- the workers --------------------------------------------------------------------------


def is_item(message: JSONDict) -> bool:
    """A message with answer buttons (an answered one keeps only its Undo)."""
    keyboard = message.get("reply_markup", {}).get("inline_keyboard", [])
    return any(str(b.get("callback_data", "")).startswith("a:") for row in keyboard for b in row)


def item_after(item: JSONDict) -> Callable[[JSONDict], bool]:
    """A later item message, or (the card layout) the same message edited into the next item."""
    return lambda message: (
        is_item(message)
        and (
            message["message_id"] > item["message_id"]
            or (
                message["message_id"] == item["message_id"]
                and message.get("text") != item.get("text")
            )
        )
    )


async def first_item(user: FakeUser) -> JSONDict:
    await user.send_text("/start")
    return await user.wait_for(is_item, timeout=START_TIMEOUT)


async def tap_through(
    user: FakeUser, item: JSONDict, taps: int, pace: float | None = None
) -> JSONDict:
    """Tap a label (the three in turn) on each new item ``taps`` times, as soon as it arrives or
    ``pace`` times a second; returns the last item."""
    start = time.perf_counter()
    for tap in range(taps):
        if pace:
            await asyncio.sleep(max(0.0, start + tap / pace - time.perf_counter()))
        await user.press(LABELS[tap % len(LABELS)], message_id=item["message_id"])
        try:
            item = await user.wait_for(item_after(item), timeout=REPLY_TIMEOUT)
        except TimeoutError:
            last = user.last.get("text") or user.last.get("caption")
            raise TimeoutError(
                f"user {user.id} got no new item within {REPLY_TIMEOUT:.0f} s of tap {tap + 1}; "
                f"the bot's last message: {last!r}"
            ) from None
    return item


async def tap_all(
    users: list[FakeUser], items: list[JSONDict], taps: int, pace: float | None = None
) -> list[JSONDict]:
    """Every user taps through ``taps`` items at the same time; returns their last items."""
    return await asyncio.gather(
        *(tap_through(user, item, taps, pace) for user, item in zip(users, items, strict=True))
    )


def items_needed(taps: int, worker_counts: Sequence[int], rounds: int) -> int:
    """Each worker answers its first item, the warm-up and the measured taps, and holds a lease
    on one more item at the end."""
    return (1 + WARMUP_TAPS + taps + 1) * sum(worker_counts) * rounds


async def measure(
    telegram: FakeTelegram,
    bot: BotProcess,
    users: list[FakeUser],
    taps: int,
    watch_postgres: bool,
    samples_to: Path | None = None,
    pace: float | None = None,
) -> Sample:
    """Start, warm up and then time ``taps`` taps of each user, all users at once; with
    ``samples_to``, py-spy samples the bot during the timed taps."""
    what = f"{len(users)} worker(s)"
    items = await bot.guarded(
        asyncio.gather(*(first_item(user) for user in users)), f"{what}: first item"
    )
    items = await bot.guarded(tap_all(users, items, WARMUP_TAPS), f"{what}: warm-up")
    await telegram.wait_idle(timeout=REPLY_TIMEOUT)

    async with sampled(bot.pid, samples_to) if samples_to else contextlib.nullcontext():
        postgres_before = postgres_cpu_seconds() if watch_postgres else None
        bot_before, main_before = cpu_seconds(bot.pid), cpu_seconds(bot.pid, thread=bot.pid)
        driver_before, wall_before = time.process_time(), time.perf_counter()
        calls_before = len(telegram.calls)
        await bot.guarded(tap_all(users, items, taps, pace), f"{what}: measured taps")
        wall = time.perf_counter() - wall_before
        # The last reply is in; let the bot finish with it (no request in flight), then read.
        await telegram.wait_idle(timeout=REPLY_TIMEOUT)
        bot_cpu = cpu_seconds(bot.pid) - bot_before
        main_thread_cpu = cpu_seconds(bot.pid, thread=bot.pid) - main_before
        driver_cpu = time.process_time() - driver_before
        postgres_cpu = None if postgres_before is None else postgres_cpu_seconds() - postgres_before
        limited_calls = sum("chat_id" in call.params for call in telegram.calls[calls_before:])
    return Sample(
        answers=taps * len(users),
        wall=wall,
        bot_cpu=bot_cpu,
        main_thread_cpu=main_thread_cpu,
        postgres_cpu=postgres_cpu,
        driver_cpu=driver_cpu,
        limited_calls=limited_calls,
    )


@dataclass(slots=True)
class Bench:
    """What every contender run shares: where files go, which user ids are still unused."""

    workdir: Path
    taps: int
    worker_counts: Sequence[int]
    user_ids: Iterator[int] = field(default_factory=lambda: itertools.count(100_001))
    runs: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    samples_dir: Path | None = None  # set: py-spy samples each timed phase into this folder
    pace: float | None = None  # taps a second per worker; None: as soon as the item arrives

    async def run(self, contender: Contender, database_url: str | None) -> dict[int, Sample]:
        """Start the contender once and measure each worker count in turn."""
        samples: dict[int, Sample] = {}
        async with FakeTelegram(TOKEN) as fake:
            env = environment(fake, database_url, contender.webhook, contender.rate_limited)
            log_path = self.workdir / f"{contender.key}-{next(self.runs)}.log"
            label = f"({contender.key}) {contender.title}"
            async with bot_process(contender.command, env, log_path, label) as bot:
                for workers in self.worker_counts:
                    users = [fake.user(next(self.user_ids)) for _ in range(workers)]
                    samples_to = (
                        self.samples_dir / f"{contender.key}-{workers}.samples"
                        if self.samples_dir
                        else None
                    )
                    samples[workers] = await measure(
                        fake,
                        bot,
                        users,
                        self.taps,
                        contender.database == "postgres",
                        samples_to,
                        self.pace,
                    )
        return samples


# -- databases ----------------------------------------------------------------------------


def write_taskset(path: Path, items: int) -> Path:
    """A text task set: no gold, overlap 1, a small reward (so answers credit the ledger)."""
    spec = {
        "name": TASKSET_NAME,
        "title": "Benchmark sentiment",
        "instructions": "Pick the feeling the author expresses.",
        "question": "What is the sentiment?",
        "labels": list(LABELS),
        "overlap": 1,
        "reward": "0.02",
        "gold_ratio": 0,
        "items": [
            {"id": f"i{n}", "text": f"Post {n}: a short post to label, about as long as a tweet."}
            for n in range(items)
        ],
    }
    path.write_text(json.dumps(spec))
    return path


async def load_taskset(database_url: str, taskset: Path, contender: Contender) -> None:
    """``labelbot load`` (which migrates first), then let the instant taps through and give the
    set the contender's layout and review rule."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LABELBOT_")}
    env["LABELBOT_DATABASE_URL"] = database_url
    loader = await asyncio.create_subprocess_exec(
        *LABELBOT_RUN[:-1],
        "load",
        str(taskset),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(loader.communicate(), LOAD_TIMEOUT)
    except TimeoutError:
        loader.kill()
        await loader.wait()
        raise BenchError(f"labelbot load took over {LOAD_TIMEOUT:.0f} s") from None
    if loader.returncode != 0:
        raise BenchError(f"labelbot load failed ({loader.returncode}):\n{output.decode()}")
    # The speed rule suspends a worker whose median answer takes under a second; the rules
    # still run (and cost what they cost), they just never fire.
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(TaskSet)
                .where(TaskSet.name == TASKSET_NAME)
                .values(
                    quality=QualityRules(min_median_seconds=0).model_dump(),
                    layout=contender.layout,
                    # As `labelbot load` stores a set's rule.
                    review=contender.review.model_dump(mode="json") if contender.review else None,
                )
            )
    finally:
        await engine.dispose()


async def _postgres_admin(admin_url: str, statement: str) -> None:
    await execute_autocommit(admin_url, statement)


@contextlib.asynccontextmanager
async def postgres_database(admin_url: str) -> AsyncIterator[str]:
    """A new database ``labelbot_bench_<random>`` on the server; dropped on the way out."""
    name = f"labelbot_bench_{uuid.uuid4().hex[:10]}"
    try:
        await _postgres_admin(admin_url, f'CREATE DATABASE "{name}"')
    except Exception as error:  # whatever the driver raises, the answer is "no server"
        raise BenchError(f"PostgreSQL is not reachable at {admin_url}: {error}") from error
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _postgres_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def prepare_databases(
    contenders: Sequence[Contender],
    bench: Bench,
    items: int,
    postgres_admin_url: str,
    stack: contextlib.AsyncExitStack,
) -> dict[str, str | None]:
    """A loaded database per contender that needs one; PostgreSQL is skipped when unreachable."""
    taskset = write_taskset(bench.workdir / "taskset.json", items)
    urls: dict[str, str | None] = {}
    for contender in contenders:
        url: str | None = None
        if contender.database == "sqlite":
            url = f"sqlite+aiosqlite:///{bench.workdir / f'{contender.key}.db'}"
        elif contender.database == "postgres":
            try:
                url = await stack.enter_async_context(postgres_database(postgres_admin_url))
            except BenchError as error:
                progress(f"({contender.key}) skipped: {error}")
                continue
        if url is not None:
            await load_taskset(url, taskset, contender)
        urls[contender.key] = url
    return urls


# -- reporting ----------------------------------------------------------------------------


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def describe(contender: Contender, workers: int, sample: Sample) -> str:
    line = (
        f"({contender.key}) {contender.title:<26} {workers} worker(s): "
        f"{sample.per_answer_ms(sample.bot_cpu):6.2f} ms CPU/answer "
        f"({sample.main_thread_cpu / sample.bot_cpu:4.0%} on the event-loop thread), "
        f"{sample.answers / sample.wall:6.0f} answers/s, "
        f"{sample.limited_calls / sample.answers:4.2f} calls with a chat_id/answer, "
        f"driver {sample.per_answer_ms(sample.driver_cpu):5.2f} ms/answer"
    )
    if sample.postgres_cpu is not None:
        line += f", PostgreSQL {sample.per_answer_ms(sample.postgres_cpu):5.2f} ms/answer"
    return line


def machine() -> str:
    model = next(
        (
            line.partition(":")[2].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"python-telegram-bot {telegram.__version__}"
    )


def report(
    contenders: Sequence[Contender],
    results: dict[tuple[str, int], Best],
    worker_counts: Sequence[int],
    args: argparse.Namespace,
) -> str:
    lines = [
        f"{date.today().isoformat()}, {machine()}; "
        f"{args.taps} measured taps per worker, best of {args.rounds} round(s)"
        + (f", each worker tapping {args.pace:g} times a second." if args.pace else "."),
        "",
        "| contender | workers | bot CPU ms/answer | answers/s | calls with a chat_id/answer "
        "| CPU vs (a) | PostgreSQL CPU ms/answer |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for contender in contenders:
        for workers in worker_counts:
            best = results.get((contender.key, workers))
            if best is None:
                continue
            baseline = results.get((BASELINE, workers))
            ratio = f"{best.cpu_ms / baseline.cpu_ms:.2f}" if baseline else "-"
            server = f"{best.postgres_ms:.2f}" if best.postgres_ms is not None else "-"
            lines.append(
                f"| ({contender.key}) {contender.title} | {workers} | {best.cpu_ms:.2f} "
                f"| {best.rate:.0f} | {best.limited_per_answer:.2f} | {ratio} | {server} |"
            )
    lines.append("")
    for key, workers, best, baseline in compared(results, TARGETS, BASELINE, worker_counts):
        target_ratio, medians = cpu_ratios(best, baseline)
        verdict = "met" if target_ratio <= TARGET_RATIO else "not met"
        lines.append(
            f"- {key}/{BASELINE} with {workers} worker(s): {target_ratio:.2f} "
            f"(target <= {TARGET_RATIO}: {verdict}); on the medians of the rounds {medians:.2f}"
        )
    reviewed = [c.key for c in contenders if c.review is not None]
    for key, workers, best, plain in compared(results, reviewed, WITHOUT_REVIEW, worker_counts):
        ratio, medians = cpu_ratios(best, plain)
        lines.append(
            f"- {key}/{WITHOUT_REVIEW} (the review rule's cost) with {workers} worker(s): CPU "
            f"{ratio:.2f}, on the medians of the rounds {medians:.2f}; {best.rate:.0f} against "
            f"{plain.rate:.0f} answers/s"
        )
    return "\n".join(lines)


def compared(
    results: dict[tuple[str, int], Best],
    keys: Sequence[str],
    baseline_key: str,
    worker_counts: Sequence[int],
) -> Iterator[tuple[str, int, Best, Best]]:
    """Each contender of ``keys`` and worker count measured beside the baseline's."""
    for key in keys:
        for workers in worker_counts:
            best, baseline = results.get((key, workers)), results.get((baseline_key, workers))
            if best is not None and baseline is not None:
                yield key, workers, best, baseline


def cpu_ratios(best: Best, baseline: Best) -> tuple[float, float]:
    """CPU per answer against the baseline's: the ratio of the minimums, and of the medians of
    the rounds (on a noisy machine the minimums may come from different moments; the medians
    show whether a verdict depends on that)."""
    medians = statistics.median(best.rounds_cpu_ms) / statistics.median(baseline.rounds_cpu_ms)
    return best.cpu_ms / baseline.cpu_ms, medians


# -- the profile --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sampled(pid: int, output: Path) -> AsyncIterator[None]:
    """py-spy samples the process while the block runs, then writes collapsed stacks.

    Only threads holding the GIL are sampled, so waits (epoll, the aiosqlite queue, SQLite's
    own C code, which releases the GIL) drop out and the samples are Python CPU time. Without
    ``--nonblocking`` py-spy stops the process for every sample and the bot crawls.
    """
    py_spy = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")
    if py_spy is None:
        raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
    spy = await asyncio.create_subprocess_exec(
        *(py_spy, "record", "--pid", str(pid), "--gil", "--nonblocking"),
        *("--rate", str(SAMPLES_PER_SECOND)),
        *("--format", "raw", "--output", str(output)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    await asyncio.sleep(SPY_ATTACH_SECONDS)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        _, errors = await asyncio.wait_for(spy.communicate(), STOP_TIMEOUT)
        if spy.returncode != 0:
            raise BenchError(f"py-spy failed ({spy.returncode}):\n{errors.decode()}")


def frame_function(frame: str) -> str:
    """``path:function`` of a py-spy frame ``function (path:line)``."""
    function, _, location = frame.rpartition(" (")
    return f"{location.rpartition(':')[0]}:{function}"


def samples_report(outputs: Sequence[Path], top: int) -> str:
    """Top functions by inclusive and by own samples, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for output in outputs:
        for line in output.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            functions = [frame_function(frame) for frame in stack.split(";") if frame]
            if functions:
                own[functions[-1]] += int(count)
                inclusive.update(dict.fromkeys(functions, int(count)))  # recursion counts once
    total = sum(own.values())
    own_code = Counter({name: n for name, n in inclusive.items() if name.startswith(OWN_CODE)})
    rankings = [
        ("by inclusive samples (the function and what it calls)", inclusive),
        ("by own samples", own),
        ("of labelbot's own code by inclusive samples", own_code),
    ]
    sections = [f"{total} samples of threads holding the GIL ({SAMPLES_PER_SECOND}/s)."]
    for title, ranked in rankings:
        sections += [f"\nTop {top} {title}:", f"{'incl %':>7} {'own %':>7}  function"]
        for name, _count in ranked.most_common(top):
            sections.append(f"{inclusive[name] / total:7.1%} {own[name] / total:7.1%}  {name}")
    return "\n".join(sections)


async def profile(bench: Bench, key: str, postgres: str) -> None:
    """One contender, sampled by py-spy during the measured taps only."""
    contender = next(c for c in CONTENDERS if c.key == key)
    items = items_needed(bench.taps, bench.worker_counts, rounds=1)
    async with contextlib.AsyncExitStack() as stack:
        urls = await prepare_databases([contender], bench, items, postgres, stack)
        bench.samples_dir = bench.workdir
        samples = await bench.run(contender, urls[contender.key])
    for workers, sample in samples.items():
        progress(describe(contender, workers, sample) + " (while sampled)")
    print(samples_report(sorted(bench.workdir.glob("*.samples")), top=25))


# -- main ---------------------------------------------------------------------------------


async def benchmark(args: argparse.Namespace, bench: Bench) -> str:
    contenders = [c for c in CONTENDERS if c.key in args.only]
    items = items_needed(args.taps, bench.worker_counts, args.rounds)
    results: dict[tuple[str, int], Best] = {}
    async with contextlib.AsyncExitStack() as stack:
        urls = await prepare_databases(contenders, bench, items, args.postgres, stack)
        contenders = [c for c in contenders if c.key in urls]
        for round_index in range(args.rounds):
            # Rotate the order so that no contender always runs first or last.
            shift = round_index % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                samples = await bench.run(contender, urls[contender.key])
                for workers, sample in samples.items():
                    progress(f"round {round_index + 1}: " + describe(contender, workers, sample))
                    results.setdefault((contender.key, workers), Best()).add(sample)
    return report(contenders, results, bench.worker_counts, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--taps", type=int, default=300, help="measured taps per worker")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 4], help="concurrent workers per phase"
    )
    parser.add_argument("--only", default="abcdefg", help="contender keys to run, e.g. ac")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="server for contender d")
    parser.add_argument(
        "--pace", type=float, help="taps a second per worker (default: as fast as items arrive)"
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="c",
        metavar="KEY",
        help="sample one contender (default c) with py-spy; print the top functions",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="answer_loop-") as workdir:
        bench = Bench(Path(workdir), args.taps, args.workers, pace=args.pace)
        try:
            if args.profile:
                asyncio.run(profile(bench, args.profile, args.postgres))
            else:
                print(asyncio.run(benchmark(args, bench)))
        except BenchError as error:
            sys.exit(f"answer_loop: {error}")


if __name__ == "__main__":
    main()
