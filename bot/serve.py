"""``labelbot run``: one process (polling or webhook), or a supervisor of several webhook ones."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
from urllib.parse import urlparse

from telegram import Update

from bot.app import LabelBotApp, build_application, polling, running
from bot.settings import Settings
from bot.webhook import WebhookServer

log = logging.getLogger(__name__)

RESTART_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0)


def stop_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly (in-flight updates finish first)."""
    stop = stop_signal()
    application = build_application(settings, migrate=False)
    if not settings.webhook_url:
        async with polling(application):
            log.info("labelbot is polling for updates; Ctrl-C stops it")
            await stop.wait()
        return
    assert settings.webhook_secret is not None  # the settings insist
    await serve_webhook(
        application,
        url=settings.webhook_url,
        secret=settings.webhook_secret.get_secret_value(),
        listen=settings.listen,
        port=settings.port,
        reuse_port=reuse_port,
        stop=stop,
    )


async def serve_webhook(
    application: LabelBotApp,
    *,
    url: str,
    secret: str,
    listen: str,
    port: int,
    stop: asyncio.Event,
    reuse_port: bool = False,
) -> None:
    """Run ``application`` behind labelbot's aiohttp webhook server until ``stop`` is set."""
    server = WebhookServer(
        application,
        secret=secret,
        listen=listen,
        port=port,
        path=urlparse(url).path or "/",
        reuse_port=reuse_port,
    )
    async with running(application):
        await server.start()
        await application.bot.set_webhook(
            url, secret_token=secret, allowed_updates=Update.ALL_TYPES, max_connections=100
        )
        log.info("serving the webhook; SIGTERM stops it")
        try:
            await stop.wait()
        finally:
            await server.stop()


def supervise(workers: int) -> int:
    """Run ``workers`` webhook processes sharing one port; restart any that dies."""
    command = [sys.executable, "-m", "bot.cli", "run", "--no-migrate", "--reuse-port"]
    children = [subprocess.Popen(command) for _ in range(workers)]
    restarts = [0] * workers
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("started %d webhook processes: %s", workers, [c.pid for c in children])
    while not stopping:
        time.sleep(0.5)
        for index, child in enumerate(children):
            code = child.poll()
            if code is None or stopping:
                continue
            delay = RESTART_BACKOFF_SECONDS[min(restarts[index], len(RESTART_BACKOFF_SECONDS) - 1)]
            log.error("process %d exited with %s; restarting in %.0f s", child.pid, code, delay)
            time.sleep(delay)
            restarts[index] += 1
            children[index] = subprocess.Popen(command)
    for child in children:
        child.wait()
    return 0
