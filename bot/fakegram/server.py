"""The fake Bot API's HTTP side: routes, method dispatch, injected faults, and the helpers a
test or a simulation drives it with."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from types import TracebackType
from typing import Self

from aiohttp import web

from bot.fakegram.chats import Chats
from bot.fakegram.errors import ApiError, Faults
from bot.fakegram.files import MAX_UPLOAD_BYTES, FileStore
from bot.fakegram.updates import UpdateQueue, update_type
from bot.fakegram.users import FakeUser
from bot.fakegram.waiting import Signal
from bot.fakegram.wire import ApiCall, JSONDict, MethodHandler, read_params


class FakeTelegram:
    """The Bot API on a loopback port. Use ``async with FakeTelegram() as tg:``."""

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        *,
        bot_username: str = "labelbot_test_bot",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.calls: list[ApiCall] = []
        self.latency = 0.0  # seconds added before every API answer
        bot_id = token.partition(":")[0]
        self.bot: JSONDict = {
            "id": int(bot_id) if bot_id.isdigit() else 1,
            "is_bot": True,
            "first_name": "LabelBot",
            "username": bot_username,
        }
        self._users: dict[int, FakeUser] = {}
        self._files = FileStore(token)
        self._chats = Chats(self.bot, self._files)
        self._faults = Faults()
        # Fires as updates are confirmed, requests and webhook posts end, long polls park.
        self._progress = Signal()
        self._updates = UpdateQueue(self._progress)
        self._in_flight = 0  # requests being served, parked long polls included
        self._last_request = time.monotonic()  # when one last began or ended
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, MethodHandler] = {
            name.lower(): handler
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._updates.get_updates,
                "setWebhook": self._updates.set_webhook,
                "deleteWebhook": self._updates.delete_webhook,
                "getWebhookInfo": self._updates.get_webhook_info,
                "getFile": self._files.get_file,
                **self._chats.methods(),
            }.items()
        }

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._files.download)
        # handler_cancellation: a long poll whose client went away must not keep waiting.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self._updates.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """PTB ``base_url``: the token and method are appended to it."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """PTB ``base_file_url``: the token and file path are appended to it."""
        return f"http://{self.host}:{self.port}/file/bot"

    # -- scenario helpers -----------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str = "Ann",
        *,
        username: str | None = None,
        language_code: str = "en",
    ) -> FakeUser:
        """The person with this id (created on first use)."""
        existing = self._users.get(user_id)
        if existing is not None:
            return existing
        user = FakeUser(
            user_id,
            first_name,
            username,
            language_code,
            chats=self._chats,
            updates=self._updates,
            files=self._files,
        )
        self._users[user_id] = user
        return user

    def push_update(self, update: JSONDict) -> int:
        """Queue a raw update (update_id assigned if missing) and deliver it; returns its id.

        An update whose id is not above every earlier one counts as re-sent and is delivered
        again even though the bot may have confirmed that id already.
        """
        self._register_sender(update)
        return self._updates.push(update)

    def redeliver(self, update_id: int) -> int:
        """Push the identical update again (same update_id), as Telegram does after a crash."""
        return self._updates.redeliver(update_id)

    def fail_next(
        self,
        method: str,
        status: int,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (to ``chat_id`` if given) fail."""
        self._faults.fail_next(method, status, description, retry_after, times, chat_id)

    def block(self, user_id: int) -> None:
        """The user blocks the bot: every call aimed at that chat fails with 403."""
        self.user(user_id).blocked = True

    def unblock(self, user_id: int) -> None:
        self.user(user_id).blocked = False

    def fault_rate(
        self,
        probability: float,
        statuses: Collection[int] = (500, 429),
        *,
        seed: int | None = None,
        retry_after: int = 1,
    ) -> None:
        """Fail each call (except getUpdates/getMe/webhook setup) with this probability, with a
        status drawn from ``statuses``; 0 turns random faults off."""
        self._faults.fail_randomly(probability, statuses, seed, retry_after)

    def add_user_file(self, content: bytes, file_name: str, mime_type: str) -> JSONDict:
        """Store a file as if a user had uploaded it; returns its Document object."""
        return self._files.add(content, file_name, mime_type, "documents").media("document", {})

    async def wait_idle(self, timeout: float = 5.0, *, quiet: float = 0.0) -> None:  # noqa: ASYNC109
        """Wait until the bot has caught up: every pushed update was confirmed by a getUpdates
        offset or answered by the webhook, and no request is being served (parked long polls
        aside).

        A webhook bot answers an update once it has handled it, so that is the end of its work.
        A polling bot confirms updates when it fetches the next ones, before its handlers ran:
        in the same process, wait for its own queue as well (PTB:
        ``await application.update_queue.join()``). A bot in another process shows no sign of
        that work (handlers between two calls, replies held by a rate limiter); ``quiet`` then
        also asks for that many seconds in which no request began or ended.
        """
        deadline = time.monotonic() + timeout
        while await self._progress.wait_until(self._idle, deadline - time.monotonic()):
            now = time.monotonic()
            if now - self._last_request >= quiet:
                return
            if now >= deadline:
                break
            # A request meanwhile fires the signal, and the count starts anew from its end.
            await self._progress.wait(min(self._last_request + quiet, deadline) - now)
        raise TimeoutError(
            f"not idle after {timeout}s: {self._updates.undelivered} updates pending, "
            f"{self._in_flight - self._updates.parked_polls} requests in flight"
        )

    async def wait_long_poll(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until a getUpdates call is parked, waiting for an update to arrive."""
        if not await self._progress.wait_until(lambda: self._updates.parked_polls > 0, timeout):
            raise TimeoutError(f"no getUpdates call waited for updates within {timeout}s")

    def _idle(self) -> bool:
        return self._updates.caught_up and self._in_flight == self._updates.parked_polls

    def _register_sender(self, update: JSONDict) -> None:
        """Make the chat of a raw update's private sender known, so the bot can answer it."""
        body = update.get(update_type(update))
        sender = body.get("from") if isinstance(body, dict) else None
        if sender and not sender.get("is_bot") and sender["id"] not in self._users:
            self.user(
                sender["id"],
                sender.get("first_name", ""),
                username=sender.get("username"),
                language_code=sender.get("language_code", "en"),
            )

    # -- HTTP -----------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return ApiError(401, "Unauthorized").response()
        method = request.match_info["method"]
        params = await read_params(request)
        self.calls.append(ApiCall(method, params, time.monotonic()))
        handler = self._methods.get(method.lower())
        if handler is None:
            return ApiError(404, "Not Found").response()
        self._in_flight += 1
        self._last_request = time.monotonic()
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            self._faults.raise_due(method.lower(), params)
            result = await handler(params)
        except ApiError as error:
            return error.response()
        finally:
            self._in_flight -= 1
            self._last_request = time.monotonic()
            self._progress.fire()
        return web.json_response({"ok": True, "result": result})

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self.bot,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
