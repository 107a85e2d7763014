"""``labelbot load`` + ``labelbot run`` as an operator runs them: separate processes, any
Bot-API-compatible server (the fake one), polling and webhook mode, clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from bot.fakegram import FakeTelegram


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


async def labelbot(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, env=env, stderr=asyncio.subprocess.PIPE
    )


async def stop(process: asyncio.subprocess.Process) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _out, err = await asyncio.wait_for(process.communicate(), 20)
    return int(process.returncode or 0), err.decode()


async def test_polling_process_serves_items_and_stops_cleanly(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    env = environment(telegram, db_url)
    source = tmp_path / "items.csv"
    source.write_text("id,text\na,first\nb,second\n")
    loader = await labelbot(
        "load", str(source), "--name", "smoke", "--labels", "yes,no", "--overlap", "1", env=env
    )
    assert await loader.wait() == 0

    bot = await labelbot("run", env=env)
    ann = telegram.user(5, "Ann")
    await ann.send_text("/start")
    item = await ann.wait_for("Item 1", timeout=30)
    await ann.press("yes", message_id=item["message_id"])
    await ann.wait_for("Item 2", timeout=10)

    code, err = await stop(bot)
    assert code == 0, err
    assert telegram.token not in err  # the token is a secret: never logged


async def test_webhook_process_refuses_wrong_secret_and_reports_health(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    port = free_port()
    env = environment(
        telegram,
        db_url,
        LABELBOT_WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",
        LABELBOT_WEBHOOK_SECRET="s3cret-token",
        LABELBOT_LISTEN="127.0.0.1",
        LABELBOT_PORT=str(port),
    )
    source = tmp_path / "items.csv"
    source.write_text("id,text\na,first\n")
    assert await (await labelbot("load", str(source), "--labels", "yes,no", env=env)).wait() == 0
    bot = await labelbot("run", env=env)
    ann = telegram.user(6, "Ann")
    await ann.send_text("/start")
    await ann.wait_for("Item 1", timeout=30)  # delivered by webhook, with the secret

    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{port}/hook", json={"update_id": 1}) as refused:
            assert refused.status == 403
        async with http.get(f"http://127.0.0.1:{port}/healthz") as health:
            body = await health.json()
    assert health.status == 200
    assert body["database"] == "ok" and body["last_update"] is not None

    code, err = await stop(bot)
    assert code == 0, err
