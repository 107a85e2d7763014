"""The webhook endpoint, served by aiohttp (PTB's custom-webhook pattern).

Telegram POSTs each update with the secret header; a request without the right secret is refused
before its body is read. A good update is processed before the request is answered: Telegram
treats a 200 as delivered, so answering before the work is done would lose the updates still
queued when a process dies. Answering after means a crash makes Telegram deliver the update again,
which the handlers are built for (idempotent on the lease token). Updates go through the
application's update processor, so PTB's limit on concurrent updates holds as in polling mode.
``/healthz`` tells a load balancer whether this process can reach the database and when it last
got an update.

Why not PTB's built-in webhook server: the same bare bot costs more CPU per update behind it than
behind this one (benchmarks/RESULTS-answer_loop.md, (f) against (g)); it needs tornado,
a second HTTP stack beside aiohttp; it has no place for ``/healthz``; and it cannot share one
port between several processes (``SO_REUSEPORT``), which ``labelbot run --workers N`` relies on.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import text
from telegram import Update

from bot.app import LabelBotApp
from bot.settings import is_valid_webhook_secret

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1 << 20


class WebhookServer:
    def __init__(
        self,
        application: LabelBotApp,
        *,
        secret: str,
        listen: str,
        port: int,
        path: str = "/telegram",
        reuse_port: bool = False,
    ) -> None:
        if not is_valid_webhook_secret(secret):  # an empty one would let anybody in
            raise ValueError("the webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _, -")
        self.application = application
        self.secret = secret.encode()
        self.listen, self.port, self.path = listen, port, path
        self.reuse_port = reuse_port
        self.last_update_at: float | None = None
        self.updates = 0
        app = web.Application(client_max_size=MAX_UPDATE_BYTES)
        app.router.add_post(path, self.receive)
        app.router.add_get("/healthz", self.health)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.listen, self.port, reuse_port=self.reuse_port or None)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the one picked when asked for port 0
        log.info("webhook listening on %s:%s%s", self.listen, self.port, self.path)

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER)
        if given is None or not hmac.compare_digest(given.encode(), self.secret):
            return web.Response(status=403, text="wrong secret token")
        try:
            data = json.loads(await request.read())
            update = Update.de_json(data, self.application.bot)
        except (ValueError, TypeError, KeyError):
            log.warning("webhook: dropped a request that is not an update")
            return web.Response(status=400, text="not a Telegram update")
        self.last_update_at = time.time()
        self.updates += 1
        application = self.application
        await application.update_processor.process_update(
            update, application.process_update(update)
        )
        return web.Response()

    async def health(self, request: web.Request) -> web.Response:
        store = self.application.bot_data.store
        try:
            async with store.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            database = "ok"
        except Exception as error:  # any failure here is the answer, not a crash
            database = f"unreachable: {type(error).__name__}"
        last = (
            datetime.fromtimestamp(self.last_update_at, UTC).isoformat()
            if self.last_update_at
            else None
        )
        body = {"database": database, "last_update": last, "updates": self.updates}
        return web.json_response(body, status=200 if database == "ok" else 503)
