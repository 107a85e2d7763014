"""Load and fault benchmark: real ``labelbot run`` processes in webhook mode, a simulated crowd.

The in-repo fake Bot API POSTs every update to the bot's webhook (with the secret header) and
plays 1,000 people who each tap a label as soon as their item arrives, for a bounded time.
A person whose tap gets no reaction within a few seconds taps the same button again (a new
callback query, as Telegram sends it); one who is told something went wrong sends ``/next``.

Setups: 1 and 2 processes on PostgreSQL (two ``run --no-migrate --reuse-port`` children sharing
one port, restarted if they exit, as ``--workers 2`` does), 1 on SQLite. A fresh database per run.

Measured: answers/s, latency from the tap to the first reaction (answerCallbackQuery) and to the
next item, bot CPU per answer (utime+stime of the bot processes), RSS per process. Checked by
SQL afterwards: every acknowledged tap ("Your answer" shown) is stored, every tap is stored or
the person was told, no item over its overlap, item counters match the rows, and the ledger sum
equals the reward times the labeled answers.

``--faults``: 5% of Bot API calls fail with 500/502/429, already delivered updates are delivered
again, one process is SIGKILLed and restarted, and every PostgreSQL connection of the bot is
terminated (``pg_terminate_backend``), all mid-run.

    .venv/bin/python benchmarks/load.py                      # the three setups, no faults
    .venv/bin/python benchmarks/load.py --faults             # the same with faults
    .venv/bin/python benchmarks/load.py --setup pg2 --workers-sim 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.fakegram import FakeTelegram, FakeUser, JSONDict
from storage.engine import create_engine, execute_autocommit
from storage.migrate import upgrade
from storage.store import LabelStore
from tasksets.spec import TaskSetSpec

POSTGRES_ADMIN_URL = os.environ.get(
    "LABELBOT_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
LABELS = ("positive", "negative", "neutral")
REWARD = "0.02"
RETAP_SECONDS = 3.0  # a person waits this long for a reaction before tapping again
RETAPS_BEFORE_NEXT = 2
# After the window the crowd stops and the bots work off what Telegram (the fake) still holds:
# under overload that backlog is thousands of re-taps. Stopping the bots before it is delivered
# would count queued taps as lost, which Telegram would in fact deliver after a restart.
DRAIN_SECONDS = 180.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
SETUPS = {"pg1": ("postgres", 1), "pg2": ("postgres", 2), "sqlite1": ("sqlite", 1)}
ERROR_TEXT = "something went wrong"  # handlers/texts.py ERROR
DONE_TEXT = "All done"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(samples: list[float], share: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# ------------------------------------------------------------------------ bot processes


class BotProcesses:
    """``count`` webhook processes on one SO_REUSEPORT port, restarted when one exits.

    CPU is read from /proc before a process is replaced, so the total covers every incarnation.
    """

    def __init__(self, count: int, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log = log_path.open("ab")
        self.children: list[asyncio.subprocess.Process | None] = [None] * count
        self.cpu_of_dead = 0.0
        self.restarts = 0
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for index in range(len(self.children)):
            await self._spawn(index)
        self._watch = asyncio.create_task(self._restart_exited())

    async def _spawn(self, index: int) -> None:
        self.children[index] = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            "--no-migrate",
            "--reuse-port",
            env=self.env,
            stdout=self.log,
            stderr=self.log,
        )

    async def _restart_exited(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            for index, child in enumerate(self.children):
                if child is not None and child.returncode is not None:
                    self.restarts += 1
                    await self._spawn(index)

    def pids(self) -> list[int]:
        return [child.pid for child in self.children if child and child.returncode is None]

    def cpu_seconds(self) -> float:
        """User+system CPU of the live processes plus that of the ones already replaced."""
        return self.cpu_of_dead + sum(cpu_seconds(pid) for pid in self.pids())

    def rss_mb(self) -> list[float]:
        return [rss_mb(pid) for pid in self.pids()]

    async def kill_one(self) -> None:
        """SIGKILL the first process; the watchdog starts a new one, as the supervisor does."""
        child = self.children[0]
        assert child is not None
        self.cpu_of_dead += cpu_seconds(child.pid)
        child.kill()
        await child.wait()

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for child in self.children:
            if child is not None and child.returncode is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            if child is not None:
                try:
                    await asyncio.wait_for(child.wait(), 20)
                except TimeoutError:
                    child.kill()
        self.log.close()


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    # After the ")" closing the command name: utime and stime are the 12th and 13th fields.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    with contextlib.suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------------- simulated people


@dataclass(slots=True)
class Person:
    """One simulated worker: taps a label on each item as soon as it is shown."""

    user: FakeUser
    rng: random.Random
    ack_ms: list[float] = field(default_factory=list)
    next_ms: list[float] = field(default_factory=list)
    tokens: dict[int, str] = field(default_factory=dict)  # item message id -> lease token
    contents: dict[str, str] = field(default_factory=dict)  # lease token -> item text shown
    tapped: set[str] = field(default_factory=set)  # tokens of items tapped at least once
    told: set[str] = field(default_factory=set)  # tokens whose tap got an alert or an error
    tap_updates: list[int] = field(default_factory=list)
    retaps: int = 0
    retries: int = 0  # /next sent after an error, an alert or silence
    done: bool = False
    newest: int = 0  # id of the newest bot message handled

    async def work(self, go: asyncio.Event | None = None) -> None:
        """Start, wait for ``go`` (everybody has an item), then label until the set runs out
        for this person or until cancelled."""
        await self.user.send_text("/start")
        item = await self._next_item(RETAP_SECONDS * 4)
        if go is not None:
            await go.wait()
        while item is not None:
            item = await self._answer(item)

    @staticmethod
    def _label_buttons(message: JSONDict) -> dict[str, str]:
        """Button text -> lease token of the label buttons (Skip and Not sure left out)."""
        return {
            str(button["text"]): data.split(":")[1]
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
            for button in row
            if (data := str(button.get("callback_data", ""))).startswith("a:")
            and data.rsplit(":", 1)[1].isdigit()
        }

    def _item_token(self, message: JSONDict) -> str | None:
        return next(iter(self._label_buttons(message).values()), None)

    def _arrival(self, newest: int) -> Callable[[JSONDict], bool]:
        """A message after ``newest`` that matters: an item, an error, or the end."""

        def arrived(message: JSONDict) -> bool:
            text = message.get("text", "")
            return message["message_id"] > newest and (
                self._item_token(message) is not None or ERROR_TEXT in text or DONE_TEXT in text
            )

        return arrived

    def _reaction(self, item_id: int, newest: int, alerts: int) -> Callable[[JSONDict], bool]:
        """Any reaction to a tap: a callback answer, a new message, or the item edited."""

        def reacted(message: JSONDict) -> bool:
            return (
                len(self.user.alerts) > alerts
                or message["message_id"] > newest
                or (message["message_id"] == item_id and "edit_date" in message)
            )

        return reacted

    async def _next_item(self, timeout: float) -> JSONDict | None:  # noqa: ASYNC109
        """Wait for a new item (or the end); after silence or an error, ask with /next."""
        while True:
            try:
                message = await self.user.wait_for(self._arrival(self.newest), timeout=timeout)
            except TimeoutError:
                self.retries += 1
                await self.user.send_text("/next")
                continue
            self.newest = message["message_id"]
            token = self._item_token(message)
            if token is not None:
                self.tokens[message["message_id"]] = token
                # "Item 7\n\n<the item>\n\n<question>": the middle part names the item.
                self.contents[token] = message.get("text", "").split("\n\n")[1]
                return message
            if DONE_TEXT in message.get("text", ""):
                self.done = True
                return None
            self.retries += 1  # "Sorry, something went wrong ... try /next"
            await self.user.send_text("/next")

    async def _answer(self, item: JSONDict) -> JSONDict | None:
        token = self.tokens[item["message_id"]]
        label = self.rng.choice(sorted(self._label_buttons(item)))
        alerts_before = len(self.user.alerts)
        self.tapped.add(token)
        for attempt in range(RETAPS_BEFORE_NEXT + 1):
            tapped_at = time.monotonic()
            self.tap_updates.append(await self.user.press(label, message_id=item["message_id"]))
            self.retaps += attempt > 0
            reaction = self._reaction(item["message_id"], self.newest, alerts_before)
            try:
                await self.user.wait_for(reaction, timeout=RETAP_SECONDS)
            except TimeoutError:
                continue  # no reaction at all: tap again
            self.ack_ms.append((time.monotonic() - tapped_at) * 1000)
            if any(alert.get("text") for alert in self.user.alerts[alerts_before:]):
                self.told.add(token)  # a rejection ("Already recorded", "timed out")
            following = await self._next_item(RETAP_SECONDS)
            if following is not None:
                self.next_ms.append((time.monotonic() - tapped_at) * 1000)
            return following
        self.told.add(token)  # never acknowledged: the person gives up on it and asks again
        return await self._next_item(RETAP_SECONDS)

    def acknowledged(self) -> set[str]:
        """Tokens of the items whose message now shows "Your answer"."""
        return {
            self.tokens[message["message_id"]]
            for message in self.user.messages
            if message["message_id"] in self.tokens and "Your answer" in message.get("text", "")
        }

    def note_errors(self) -> None:
        """Items followed by an error message count as told (the person was asked to retry)."""
        pending: str | None = None
        for message in self.user.messages:
            token = self.tokens.get(message["message_id"])
            if token is not None:
                pending = token
            elif pending is not None and ERROR_TEXT in message.get("text", ""):
                self.told.add(pending)


# ------------------------------------------------------------------------- databases


@contextlib.asynccontextmanager
async def fresh_database(backend: str, folder: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'load.db'}"
        return
    name = f"labelbot_load_{uuid.uuid4().hex[:8]}"
    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False)
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def admin(sql: str) -> None:
    await execute_autocommit(POSTGRES_ADMIN_URL, sql)


async def terminate_connections(url: str) -> int:
    """Drop every connection the bot holds to its database (the fault PostgreSQL failover is)."""
    name = make_url(url).database
    engine = create_engine(POSTGRES_ADMIN_URL)
    try:
        async with engine.connect() as connection:
            killed = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            return int(killed or 0)
    finally:
        await engine.dispose()


def load_spec(items: int) -> TaskSetSpec:
    """A set big enough that nobody runs out within the run; 1% gold, 5% of items served gold.

    The speed and gold-accuracy rules are off: the crowd taps at machine speed, at random.
    """
    rows: list[JSONDict] = [{"id": f"t{i}", "text": f"item text {i}"} for i in range(items)]
    rows += [
        {"id": f"g{i}", "text": f"control {i}", "gold": LABELS[i % 3]} for i in range(items // 100)
    ]
    return TaskSetSpec.model_validate(
        {
            "name": "load",
            "title": "Load",
            "question": "What is the sentiment?",
            "labels": list(LABELS),
            "overlap": 3,
            "reward": REWARD,
            "gold_ratio": 0.05,
            "quality": {"min_median_seconds": 0, "min_gold_accuracy": 0},
            "items": rows,
        }
    )


async def prepare(url: str, items: int) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        await LabelStore(engine).load_taskset(load_spec(items))
    finally:
        await engine.dispose()


async def count_answers(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(text("SELECT count(*) FROM answers")) or 0)
    finally:
        await engine.dispose()


async def check_invariants(url: str, people: list[Person]) -> tuple[dict[str, int], int]:
    """Violations per invariant (all should be 0) and the number of stored answers."""
    store = LabelStore(create_engine(url))
    try:
        violations = await store.consistency_violations()
        async with store.engine.connect() as connection:
            stored = {
                token
                for (token,) in await connection.execute(
                    text("SELECT token FROM assignments WHERE state = 'answered'")
                )
            }
    finally:
        await store.close()
    acknowledged: set[str] = set()
    unaccounted = 0
    for person in people:
        person.note_errors()
        acknowledged |= person.acknowledged()
        unaccounted += len(person.tapped - stored - person.told)
    violations["acknowledged taps not stored"] = len(acknowledged - stored)
    violations["taps neither stored nor told to retry"] = unaccounted
    return violations, len(stored)


# ---------------------------------------------------------------------------- a run


@dataclass(slots=True)
class RunResult:
    setup: str
    faults: bool
    seconds: float
    answers: int  # stored within the measured window
    stored: int  # stored in all, warm-up and drain included
    acknowledged: int
    ack_ms: list[float]
    next_ms: list[float]
    cpu_ms_per_answer: float
    rss_mb: list[float]
    violations: dict[str, int]
    events: list[str]
    retaps: int
    retries: int
    restarts: int

    def row(self) -> str:
        ok = "ok" if not any(self.violations.values()) else "VIOLATED"
        rss = " / ".join(f"{mb:.0f}" for mb in self.rss_mb)
        rate = self.answers / self.seconds
        return (
            f"| {self.setup} | {'yes' if self.faults else 'no'} | {rate:.0f} "
            f"| {percentile(self.ack_ms, 0.5):.0f} / {percentile(self.ack_ms, 0.99):.0f} "
            f"| {percentile(self.next_ms, 0.5):.0f} / {percentile(self.next_ms, 0.99):.0f} "
            f"| {self.cpu_ms_per_answer:.2f} | {rss} | {self.stored} / {self.acknowledged} "
            f"| {self.retaps} / {self.retries} | {ok} |"
        )


TABLE_HEAD = (
    "| setup | faults | answers/s | tap→ack p50/p99 ms | tap→next item p50/p99 ms "
    "| bot CPU ms/answer | RSS MB per process | stored / acknowledged | re-taps / retries "
    "| invariants |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
)


async def inject_faults(
    telegram: FakeTelegram,
    bots: BotProcesses,
    people: list[Person],
    url: str,
    backend: str,
    seconds: float,
    events: list[str],
) -> None:
    """Redeliver updates throughout; SIGKILL a process at 30%, drop DB connections at 60%."""
    started = time.monotonic()
    rng = random.Random(11)
    telegram.fault_rate(0.05, (500, 502, 429), seed=5)
    killed = terminated = False
    while (elapsed := time.monotonic() - started) < seconds:
        await asyncio.sleep(0.25)
        delivered = [
            update
            for person in rng.sample(people, min(20, len(people)))
            for update in person.tap_updates
        ]
        for update_id in rng.sample(delivered, min(5, len(delivered))):
            telegram.redeliver(update_id)
        if not killed and elapsed > 0.3 * seconds:
            await bots.kill_one()
            killed = True
            events.append(f"SIGKILL at {elapsed:.0f}s")
        if backend == "postgres" and not terminated and elapsed > 0.6 * seconds:
            count = await terminate_connections(url)
            terminated = True
            events.append(f"pg_terminate_backend x{count} at {elapsed:.0f}s")
    telegram.fault_rate(0)


async def run_setup(
    setup: str, *, people_count: int, seconds: float, faults: bool, pool_size: int
) -> RunResult:
    backend, processes = SETUPS[setup]
    with tempfile.TemporaryDirectory(prefix="labelbot-load-") as folder:
        async with fresh_database(backend, Path(folder)) as url, FakeTelegram() as telegram:
            began = time.monotonic()
            await prepare(url, items=max(3000, people_count * 20))
            env = webhook_environment(telegram, url, pool_size=pool_size)
            log_path = Path(tempfile.gettempdir()) / f"labelbot-load-{setup}-{int(faults)}.log"
            log_path.unlink(missing_ok=True)
            bots = BotProcesses(processes, env, log_path)
            await bots.start()
            await wait_for_webhooks(telegram, processes)
            rng = random.Random(1)
            people = [
                Person(telegram.user(10_000 + n, f"Worker{n}"), random.Random(rng.random()))
                for n in range(people_count)
            ]
            go = asyncio.Event()
            tasks = [asyncio.create_task(person.work(go)) for person in people]
            await wait_everyone_started(people)
            answers_before = await count_answers(url)
            cpu_before = bots.cpu_seconds()
            window_start = time.monotonic()
            go.set()
            events: list[str] = [f"ready after {window_start - began:.0f}s"]
            if faults:
                await inject_faults(telegram, bots, people, url, backend, seconds, events)
            else:
                await asyncio.sleep(seconds)
            elapsed = time.monotonic() - window_start
            answers_in_window = await count_answers(url) - answers_before
            cpu = bots.cpu_seconds() - cpu_before
            rss = bots.rss_mb()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            drained = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await telegram.wait_idle(DRAIN_SECONDS)
            await bots.stop()
            events.append(f"drained and stopped in {time.monotonic() - drained:.0f}s")
            violations, stored = await check_invariants(url, people)
            acknowledged = sum(len(person.acknowledged()) for person in people)
            return RunResult(
                setup=setup,
                faults=faults,
                seconds=elapsed,
                answers=answers_in_window,
                stored=stored,
                acknowledged=acknowledged,
                ack_ms=[ms for person in people for ms in person.ack_ms],
                next_ms=[ms for person in people for ms in person.next_ms],
                cpu_ms_per_answer=cpu * 1000 / max(1, answers_in_window),
                rss_mb=rss,
                violations=violations,
                events=[*events, f"log: {log_path}"],
                retaps=sum(person.retaps for person in people),
                retries=sum(person.retries for person in people),
                restarts=bots.restarts,
            )


def webhook_environment(telegram: FakeTelegram, url: str, *, pool_size: int = 10) -> dict[str, str]:
    """Settings for ``labelbot run`` processes in webhook mode against the fake, on a free port."""
    port = free_port()
    return {
        **os.environ,
        "LABELBOT_BOT_TOKEN": telegram.token,
        "LABELBOT_DATABASE_URL": url,
        "LABELBOT_TELEGRAM_BASE_URL": telegram.base_url,
        "LABELBOT_TELEGRAM_BASE_FILE_URL": telegram.base_file_url,
        "LABELBOT_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
        "LABELBOT_WEBHOOK_SECRET": secrets.token_urlsafe(16),
        "LABELBOT_LISTEN": "127.0.0.1",
        "LABELBOT_PORT": str(port),
        "LABELBOT_RATE_LIMIT": "0",  # the limiter would cap the answers per second
        "LABELBOT_DB_POOL_SIZE": str(pool_size),
    }


async def wait_for_webhooks(telegram: FakeTelegram, processes: int) -> None:
    deadline = time.monotonic() + 60
    while sum(call.method == "setWebhook" for call in telegram.calls) < processes:
        if time.monotonic() > deadline:
            raise TimeoutError("the bot processes did not set their webhook within 60 s")
        await asyncio.sleep(0.1)


async def wait_everyone_started(people: list[Person]) -> None:
    deadline = time.monotonic() + 120
    while any(not person.tokens for person in people):
        if time.monotonic() > deadline:
            waiting = sum(not person.tokens for person in people)
            raise TimeoutError(f"{waiting} workers got no first item within 120 s")
        await asyncio.sleep(0.1)


async def main_async(args: argparse.Namespace) -> int:
    results: list[RunResult] = []
    for setup in args.setup:
        print(f"running {setup} ({'with' if args.faults else 'without'} faults)...", flush=True)
        result = await run_setup(
            setup,
            people_count=args.workers_sim,
            seconds=args.seconds,
            faults=args.faults,
            pool_size=args.pool_size,
        )
        results.append(result)
        print(TABLE_HEAD)
        print(result.row())
        for name, count in result.violations.items():
            print(f"  {name}: {count}")
        print(f"  restarts: {result.restarts}; " + "; ".join(result.events), flush=True)
    print(f"\n{args.workers_sim} simulated workers, {args.seconds:.0f} s window per run\n")
    print(TABLE_HEAD)
    for result in results:
        print(result.row())
    failed = any(any(result.violations.values()) for result in results)
    print("\ninvariants: " + ("VIOLATED" if failed else "all hold"))
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers-sim", type=int, default=1000, help="simulated people")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per run")
    parser.add_argument("--faults", action="store_true", help="inject the faults listed above")
    parser.add_argument(
        "--setup",
        action="append",
        choices=sorted(SETUPS),
        help="run only these setups (repeatable); default all three",
    )
    parser.add_argument("--pool-size", type=int, default=10, help="LABELBOT_DB_POOL_SIZE")
    args = parser.parse_args()
    args.setup = args.setup or ["pg1", "pg2", "sqlite1"]
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
