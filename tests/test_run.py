"""``labelbot load`` + ``labelbot run`` as an operator runs them: separate processes, any
Bot-API-compatible server (the fake one), polling and webhook mode, clean stop on SIGTERM, and
start-up problems told in a line each: a Bot API that cannot be reached is retried until it
answers, a rejected token ends the process with exit code 2 and is never shown."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import aiohttp
import pytest

from bot.fakegram import FakeTelegram
from tests.watched import Watched

WRONG_TOKEN = "987654:WRONG-token-that-must-never-be-shown"
# What an unclean exit leaves on stderr: a traceback, or aiohttp's warning about open sessions.
UNCLEAN = ("Traceback", "Unclosed")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(telegram: FakeTelegram, db_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LABELBOT_BOT_TOKEN": telegram.token,
        "LABELBOT_DATABASE_URL": db_url,
        "LABELBOT_TELEGRAM_BASE_URL": telegram.base_url,
        "LABELBOT_TELEGRAM_BASE_FILE_URL": telegram.base_file_url,
        **extra,
    }


def webhook_environment(telegram: FakeTelegram, db_url: str, **extra: str) -> dict[str, str]:
    port = free_port()
    return environment(
        telegram,
        db_url,
        LABELBOT_WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",
        LABELBOT_WEBHOOK_SECRET="s3cret-token",
        LABELBOT_LISTEN="127.0.0.1",
        LABELBOT_PORT=str(port),
        **extra,
    )


async def load_items(env: dict[str, str], tmp_path: Path, *texts: str) -> None:
    source = tmp_path / "items.csv"
    source.write_text("id,text\n" + "".join(f"{n},{text}\n" for n, text in enumerate(texts)))
    loader = await Watched.labelbot(
        "load", str(source), "--name", "smoke", "--labels", "yes,no", "--overlap", "1", env=env
    )
    assert await loader.exited() == 0, loader.output


async def test_polling_process_serves_items_and_stops_cleanly(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    env = environment(telegram, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await load_items(env, tmp_path, "first", "second")

    bot = await Watched.labelbot("run", env=env)
    ann = telegram.user(5, "Ann")
    await ann.send_text("/start")
    item = await ann.wait_for("Item 1", timeout=30)
    await ann.press("yes", message_id=item["message_id"])
    await ann.wait_for("Item 2", timeout=10)

    assert await bot.stop() == 0, bot.output
    assert telegram.token not in bot.output  # the token is a secret: never logged
    assert not any(word in bot.output for word in UNCLEAN), bot.output


async def test_webhook_process_refuses_wrong_secret_and_reports_health(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    env = webhook_environment(telegram, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await load_items(env, tmp_path, "first")
    bot = await Watched.labelbot("run", env=env)
    ann = telegram.user(6, "Ann")
    await ann.send_text("/start")
    await ann.wait_for("Item 1", timeout=30)  # delivered by webhook, with the secret

    base = f"http://127.0.0.1:{env['LABELBOT_PORT']}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/hook", json={"update_id": 1}) as refused:
            assert refused.status == 403
        async with http.get(f"{base}/healthz") as health:
            body = await health.json()
    assert health.status == 200
    assert body["database"] == "ok" and body["last_update"] is not None

    assert await bot.stop() == 0, bot.output


async def test_an_unreachable_bot_api_is_retried_until_it_answers(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet
    env = environment(
        telegram,
        f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        LABELBOT_TELEGRAM_BASE_URL=f"http://127.0.0.1:{port}/bot",
        LABELBOT_TELEGRAM_BASE_FILE_URL=f"http://127.0.0.1:{port}/file/bot",
    )
    await load_items(env, tmp_path, "first")
    bot = await Watched.labelbot("run", env=env)
    await bot.wait_for("cannot reach the Bot API", count=2)

    async with FakeTelegram(telegram.token, port=port) as late_telegram:
        ann = late_telegram.user(7, "Ann")
        await ann.send_text("/start")
        await ann.wait_for("Item 1", timeout=30)
        assert await bot.stop() == 0, bot.output

    attempts = [line for line in bot.lines if "cannot reach the Bot API" in line]
    assert f"127.0.0.1:{port}" in attempts[0] and "attempt 1" in attempts[0]
    assert not any(word in bot.output for word in UNCLEAN), bot.output


@pytest.mark.parametrize(
    ("mode", "method"), [("polling", "deleteWebhook"), ("webhook", "setWebhook")]
)
async def test_a_failing_webhook_call_at_start_is_retried_until_it_answers(
    telegram: FakeTelegram, tmp_path: Path, mode: str, method: str
) -> None:
    make = environment if mode == "polling" else webhook_environment
    env = make(telegram, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await load_items(env, tmp_path, "first")
    telegram.fail_next(method, 502, times=2)  # a proxy in front of the Bot API, restarting
    bot = await Watched.labelbot("run", env=env)
    ann = telegram.user(9, "Ann")
    await ann.send_text("/start")
    await ann.wait_for("Item 1", timeout=30)
    assert await bot.stop() == 0, bot.output

    attempts = [line for line in bot.lines if "cannot reach the Bot API" in line]
    assert len(attempts) == 2, bot.output
    assert method in attempts[0] and "attempt 1" in attempts[0] and "attempt 2" in attempts[1]
    assert not any(word in bot.output for word in UNCLEAN), bot.output


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_stopped_while_the_bot_api_is_unreachable_it_exits_0_saying_only_so(
    telegram: FakeTelegram, tmp_path: Path, mode: str
) -> None:
    port = free_port()
    make = environment if mode == "polling" else webhook_environment
    env = make(
        telegram,
        f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        LABELBOT_TELEGRAM_BASE_URL=f"http://127.0.0.1:{port}/bot",
    )
    bot = await Watched.labelbot("run", env=env)
    await bot.wait_for("cannot reach the Bot API", count=2)

    assert await bot.stop() == 0, bot.output
    # One line per attempt and nothing else: no migration chatter, no traceback, no warning
    # about sessions left open.
    assert all("cannot reach the Bot API" in line for line in bot.lines), bot.output


@pytest.mark.parametrize("verbose", [[], ["-v"]], ids=["quiet", "verbose"])
async def test_a_rejected_token_exits_2_with_one_line_that_never_shows_it(
    telegram: FakeTelegram, tmp_path: Path, verbose: list[str]
) -> None:
    env = environment(
        telegram, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", LABELBOT_BOT_TOKEN=WRONG_TOKEN
    )
    bot = await Watched.labelbot(*verbose, "run", env=env)

    assert await bot.exited() == 2
    assert WRONG_TOKEN not in bot.output and WRONG_TOKEN.partition(":")[2] not in bot.output
    assert not any(word in bot.output for word in UNCLEAN), bot.output
    last = bot.lines[-1]
    assert last.startswith("labelbot: ") and "LABELBOT_BOT_TOKEN" in last
    if not verbose:
        assert bot.lines == [last]


async def test_webhook_processes_with_a_rejected_token_stop_the_supervisor_with_2(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    env = webhook_environment(
        telegram, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", LABELBOT_BOT_TOKEN=WRONG_TOKEN
    )
    bot = await Watched.labelbot("run", "--workers", "2", env=env)

    assert await bot.exited() == 2
    assert WRONG_TOKEN not in bot.output
    assert "LABELBOT_BOT_TOKEN" in bot.output and "restarting" not in bot.output


async def test_webhook_processes_use_the_database_given_on_the_command_line(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    given = f"sqlite+aiosqlite:///{tmp_path / 'given.db'}"
    env = webhook_environment(telegram, f"sqlite+aiosqlite:///{tmp_path / 'from-environment.db'}")
    await load_items({**env, "LABELBOT_DATABASE_URL": given}, tmp_path, "first")
    bot = await Watched.labelbot("--database-url", given, "run", "--workers", "2", env=env)
    ann = telegram.user(8, "Ann")
    await ann.send_text("/start")
    await ann.wait_for("Item 1", timeout=30)  # the set exists only in the given database

    assert await bot.stop() == 0, bot.output
