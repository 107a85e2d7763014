"""Application wiring: one ``build_application``; services live in ``post_init``."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from telegram import Update
from telegram.error import Forbidden, TelegramError
from telegram.ext import AIORateLimiter, ApplicationBuilder, ContextTypes, JobQueue

from bot.settings import Settings
from bot.transport import build_requests
from handlers import (
    coordinator,
    flood,
    privacy,
    registry,
    replies,
    reviews,
    stats,
    texts,
    worker,
)
from handlers import settings as settings_menu
from handlers.broadcasts import Broadcaster
from handlers.labeling_bot import LabelingBot
from handlers.registry import Routes
from handlers.services import Context, LabelBotApp, Services
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.store import LabelStore, utcnow

log = logging.getLogger(__name__)

LEASE_SWEEP_SECONDS = 30.0
# Every audience's handlers, in order; the catch-all for unclaimed buttons follows them all.
# Typed and voice answers come last: any message no other handler takes may be one.
HANDLER_MODULES: tuple[Routes, ...] = (
    worker.ROUTES,
    reviews.ROUTES,
    stats.ROUTES,
    settings_menu.ROUTES,
    privacy.ROUTES,
    coordinator.ROUTES,
    replies.ROUTES,
)
# How often a process looks for task sets that got all their answers, to tell the coordinators.
COMPLETION_CHECK_SECONDS = 30.0


def build_application(
    settings: Settings,
    *,
    migrate: bool = True,
    clock: Callable[[], datetime] = utcnow,
    rng: random.Random | None = None,
) -> LabelBotApp:
    """The real Application: transport, rate limiter, handlers, services and the lease sweeper."""

    async def post_init(application: LabelBotApp) -> None:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        if migrate:
            await upgrade(engine)
        application.bot_data.open(
            LabelStore(
                engine,
                lease=timedelta(seconds=settings.lease_seconds),
                clock=clock,
                rng=rng,
                pseudonym_secret=settings.pseudonym_key(),
            ),
            coordinators=settings.coordinators,
        )
        try:
            await application.bot.set_my_commands(registry.command_menu(HANDLER_MODULES))
        except TelegramError as error:  # only the phone's command menu is missing; keep going
            log.warning("could not register the command menu: %s", error)
        if application.job_queue is not None:
            application.job_queue.run_repeating(
                sweep_leases, interval=LEASE_SWEEP_SECONDS, first=LEASE_SWEEP_SECONDS
            )
            application.job_queue.run_repeating(
                coordinator.report_completed,
                interval=COMPLETION_CHECK_SECONDS,
                first=COMPLETION_CHECK_SECONDS,
            )
        # Resumes a broadcast a restart interrupted; stopped by Services.close.
        broadcaster = Broadcaster(
            application.bot, application.bot_data.store, rate=settings.broadcast_rate
        )
        application.bot_data.broadcaster = broadcaster
        broadcaster.start()

    async def post_shutdown(application: LabelBotApp) -> None:
        await application.bot_data.close()

    request, get_updates_request = build_requests(
        settings.http, get_updates_read_timeout=30.0, connection_pool_size=256
    )
    labeling_bot = LabelingBot(
        settings.token(),
        base_url=settings.telegram_base_url,
        base_file_url=settings.telegram_base_file_url,
        request=request,
        get_updates_request=get_updates_request,
        rate_limiter=(
            AIORateLimiter(overall_max_rate=settings.rate_limit, max_retries=3)
            if settings.rate_limit
            else None
        ),
    )
    application = (
        ApplicationBuilder()
        .bot(labeling_bot)
        .context_types(ContextTypes(context=Context, bot_data=Services))
        .job_queue(JobQueue[Context]())
        .concurrent_updates(True)
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    registry.register(application, HANDLER_MODULES)
    flood.register(application, settings.flood_rate, clock)
    application.add_error_handler(on_error)
    return application


@asynccontextmanager
async def running(application: LabelBotApp) -> AsyncIterator[None]:
    """Initialise, run ``post_init``, start; and the reverse on the way out.

    What ``run_polling``/``run_webhook`` do around the update source, minus signal handling and
    loop ownership, so ``labelbot run``, the demo, the tests and the benchmarks share one path.
    """
    async with application:
        if application.post_init is not None:
            await application.post_init(application)
        await application.start()
        try:
            yield
        finally:
            await application.stop()
            if application.post_shutdown is not None:
                await application.post_shutdown(application)


@asynccontextmanager
async def polling(application: LabelBotApp, *, poll_timeout: int = 10) -> AsyncIterator[None]:
    """Run the application with long polling inside an event loop someone else owns.

    PTB's start_polling deletes any webhook first, once and without retrying; ``labelbot run``
    has deleted it before, retrying (``bot.serve.connect``)."""
    async with running(application):
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0.0, timeout=poll_timeout)
        try:
            yield
        finally:
            await application.updater.stop()


async def sweep_leases(context: Context) -> None:
    expired = await context.bot_data.store.expire_leases()
    if expired:
        log.info("expired %d unanswered leases; their items are back in the pool", expired)


async def on_error(update: object, context: Context) -> None:
    """Log every failure with its update id (never the token); keep the bot running."""
    update_id = update.update_id if isinstance(update, Update) else None
    user = update.effective_user if isinstance(update, Update) else None
    if isinstance(context.error, Forbidden) and user is not None:
        log.warning("update %s: user %s blocked the bot; marked inactive", update_id, user.id)
        await context.bot_data.store.mark_inactive(user.id)
        return
    log.error("update %s failed", update_id, exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await context.bot.send_message(update.effective_chat.id, texts.ERROR)
        except Exception:  # telling the user is best effort; the error is already logged
            log.warning("update %s: could not tell the user about the failure", update_id)
