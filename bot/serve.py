"""``labelbot run``: one process (polling or webhook), or a supervisor of several webhook ones."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from urllib.parse import urlparse

from telegram import Bot, Update
from telegram.error import NetworkError

from bot import event_loop
from bot.app import LabelBotApp, build_application, polling, running
from bot.settings import Settings
from bot.webhook import WebhookServer

log = logging.getLogger(__name__)

CONNECT_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
RESTART_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0)
# How long a child may take to finish its in-flight updates after SIGTERM before it gets SIGKILL;
# below systemd's TimeoutStopSec in deploy/labelbot.service.
STOP_GRACE_SECONDS = 20.0
# A child's exit code for settings it refuses (the CLI's invalid-input code): restarting it
# cannot help, so the supervisor stops instead.
EXIT_REFUSED_SETTINGS = 2


def stop_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``stop``; True if it was set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


def backoff(delays: Sequence[float], attempt: int) -> float:
    """The delay before retry number ``attempt`` (from 0): the last one repeats."""
    return delays[min(attempt, len(delays) - 1)]


async def until_answered(
    bot: Bot, method: str, call: Callable[[], Awaitable[object]], stop: asyncio.Event
) -> bool:
    """Make a start-up call to the Bot API (``method`` names it in the log), retrying with
    back-off while the Bot API cannot be reached, one log line per failed attempt.

    Returns False when ``stop`` is set first. Errors other than ``NetworkError`` propagate:
    retrying cannot cure a refusal.
    """
    # The host alone: the rest of the URL holds the token.
    host = urlparse(bot.base_url).netloc.rpartition("@")[2]
    attempt = 0
    while True:
        try:
            await call()  # bounded by the transport's connect and read timeouts
        except NetworkError as error:  # TimedOut included
            delay = backoff(CONNECT_BACKOFF_SECONDS, attempt)
            attempt += 1
            log.warning(
                "cannot reach the Bot API at %s (%s, attempt %d: %s); retrying in %.0f s",
                host,
                method,
                attempt,
                error,
                delay,
            )
            if await stopped_within(stop, delay):
                return False
        else:
            return True


async def connect(bot: Bot, stop: asyncio.Event, *, clear_webhook: bool) -> bool:
    """Initialise ``bot`` (open its HTTP sessions and ask getMe) and, with ``clear_webhook``
    (for polling), delete any webhook an earlier run in webhook mode left (Telegram refuses
    getUpdates while one is set); each call retried by ``until_answered``.

    Returns False when ``stop`` is set first. ``telegram.error.InvalidToken`` propagates, since
    retrying cannot fix a rejected token; its message holds the token, so never show it. Unless
    this returns True the bot's sessions are closed again.
    """
    connected = False
    try:
        connected = await until_answered(bot, "getMe", bot.initialize, stop)
        if connected and clear_webhook:
            connected = await until_answered(bot, "deleteWebhook", bot.delete_webhook, stop)
        return connected
    finally:
        if not connected:
            await bot.shutdown()


async def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly (in-flight updates finish first).

    Raises ``telegram.error.InvalidToken`` when the Bot API rejects the token.
    """
    stop = stop_signal()
    application = build_application(settings, migrate=False)
    if not await connect(application.bot, stop, clear_webhook=not settings.webhook_url):
        return
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
        try:
            bot = application.bot
            if await until_answered(
                bot,
                "setWebhook",
                lambda: bot.set_webhook(
                    url, secret_token=secret, allowed_updates=Update.ALL_TYPES, max_connections=100
                ),
                stop,
            ):
                log.info("serving the webhook; SIGTERM stops it")
                await stop.wait()
        finally:
            await server.stop()


def supervise(
    workers: int,
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    grace: float = STOP_GRACE_SECONDS,
) -> int:
    """Keep ``workers`` processes of ``command`` (webhook processes sharing one port) running,
    restarting any that exits, until SIGINT or SIGTERM; then stop them all.

    Returns 0 after a requested stop, or ``EXIT_REFUSED_SETTINGS`` when a process refused its
    settings (every one would).
    """
    return event_loop.run(_supervise(workers, command, env, grace))


async def _supervise(
    workers: int, command: Sequence[str], env: Mapping[str, str] | None, grace: float
) -> int:
    stop = stop_signal()
    log.info("starting %d webhook processes", workers)
    # Each slot owns its process from start to reaping, so none escapes the stop: a slot starts
    # nothing once the event is set, and one started as it was being set is stopped by its wait.
    codes = await asyncio.gather(
        *(_keep_running(slot, command, env, stop, grace) for slot in range(workers))
    )
    return max(codes)


async def _keep_running(
    slot: int,
    command: Sequence[str],
    env: Mapping[str, str] | None,
    stop: asyncio.Event,
    grace: float,
) -> int:
    restarts = 0
    while not stop.is_set():
        child = await asyncio.create_subprocess_exec(*command, env=env)
        log.info("process %d started in slot %d", child.pid, slot)
        code = await _wait_or_stop(child, stop, grace)
        if stop.is_set():
            break
        if code == EXIT_REFUSED_SETTINGS:
            log.error("process %d refused its settings; stopping all processes", child.pid)
            stop.set()
            return EXIT_REFUSED_SETTINGS
        delay = backoff(RESTART_BACKOFF_SECONDS, restarts)
        log.error("process %d %s; restarting in %.0f s", child.pid, _ended(code), delay)
        if await stopped_within(stop, delay):
            break
        restarts += 1
    return 0


async def _wait_or_stop(
    child: asyncio.subprocess.Process, stop: asyncio.Event, grace: float
) -> int:
    """Wait for ``child`` to exit. If ``stop`` is set first, SIGTERM it, and SIGKILL it when it
    is still there after ``grace`` seconds. Returns its exit code."""
    exited = asyncio.ensure_future(child.wait())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait((exited, stopping), return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not exited.done():
        with contextlib.suppress(ProcessLookupError):  # it exited after all
            child.terminate()
        if not (await asyncio.wait((exited,), timeout=grace))[0]:
            log.warning("process %d ignored SIGTERM for %.0f s; killing it", child.pid, grace)
            with contextlib.suppress(ProcessLookupError):
                child.kill()
    return await exited


def _ended(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
