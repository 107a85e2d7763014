"""Updates as Telegram queues them: ids, getUpdates with offset confirmation and long polls,
allowed_updates, and webhook delivery with the secret header and retries."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import deque
from dataclasses import dataclass, field

import aiohttp

from bot.fakegram.errors import POLL_TERMINATED, WEBHOOK_ACTIVE, ApiError, bad_request
from bot.fakegram.waiting import Signal
from bot.fakegram.wire import JSONDict

WEBHOOK_RETRY_SECONDS = 0.1

# Update types Telegram delivers only when asked for explicitly in allowed_updates.
_OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def update_type(update: JSONDict) -> str:
    kind = next((key for key in update if key != "update_id"), None)
    if kind is None:
        raise ValueError(f"an update needs a payload besides its update_id: {update!r}")
    return kind


@dataclass(slots=True)
class _Pending:
    update: JSONDict
    # Only for out-of-order entries (redeliveries, failed webhook posts): an offset confirms
    # them once they have actually been handed out, since their id is already below it.
    handed_out: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


@dataclass(slots=True)
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    last_error_date: int | None = None
    last_error_message: str | None = None


class UpdateQueue:
    """The updates waiting for the bot, and the Bot API methods that hand them out.

    ``progress`` fires whenever an update is confirmed or dropped, a webhook post ends, or a long
    poll parks or wakes: what decides whether the bot has caught up.
    """

    def __init__(self, progress: Signal) -> None:
        self._progress = progress
        # In-order entries are confirmed by offset prefix; re-sends wait in _out_of_order.
        self._by_id: dict[int, JSONDict] = {}
        self._last_update_id = 0
        self._pending: deque[_Pending] = deque()
        self._out_of_order: deque[_Pending] = deque()
        self._ready = Signal()
        self._allowed_updates: frozenset[str] | None = None
        self._poll_generation = 0
        self._webhook: _Webhook | None = None
        self._webhook_session: aiohttp.ClientSession | None = None
        self._webhook_posts = 0
        self._parked_polls = 0
        self._closing = False

    @property
    def undelivered(self) -> int:
        """Updates not yet confirmed by an offset nor accepted by the webhook."""
        return len(self._pending) + len(self._out_of_order)

    @property
    def caught_up(self) -> bool:
        """Every update was confirmed by an offset or answered by the webhook."""
        return not (self._pending or self._out_of_order or self._webhook_posts)

    @property
    def parked_polls(self) -> int:
        """getUpdates calls waiting for an update to arrive."""
        return self._parked_polls

    def push(self, update: JSONDict) -> int:
        """Queue an update (update_id assigned if missing) and deliver it; returns its id.

        An update whose id is not above every earlier one counts as re-sent and is delivered
        again even though the bot may have confirmed that id already.
        """
        if "update_id" not in update:
            update = {"update_id": self._last_update_id + 1, **update}
        update_id = int(update["update_id"])
        self._by_id.setdefault(update_id, update)
        if not self._wants(update_type(update)):
            return update_id
        if update_id > self._last_update_id:
            self._last_update_id = update_id
            self._pending.append(_Pending(update))
        else:
            self._out_of_order.append(_Pending(update))
        self._ready.fire()
        return update_id

    def redeliver(self, update_id: int) -> int:
        """Push the identical update again (same update_id), as Telegram does after a crash."""
        update = self._by_id.get(update_id)
        if update is None:
            raise LookupError(f"no update {update_id} was ever pushed")
        return self.push(update)

    async def close(self) -> None:
        """End parked long polls and webhook delivery."""
        self._closing = True
        self._ready.fire()
        await self._stop_webhook()

    # -- getUpdates -----------------------------------------------------------------------

    def _wants(self, kind: str) -> bool:
        if self._allowed_updates is None:
            return kind not in _OPT_IN_UPDATE_TYPES
        return kind in self._allowed_updates

    def _confirm(self, offset: int) -> None:
        if offset < 0:  # keep only the last -offset updates
            while len(self._pending) > -offset:
                self._pending.popleft()
        else:
            while self._pending and self._pending[0].update_id < offset:
                self._pending.popleft()
            if self._out_of_order:
                self._out_of_order = deque(
                    entry
                    for entry in self._out_of_order
                    if not (entry.handed_out and entry.update_id < offset)
                )
        self._progress.fire()

    def _batch(self, limit: int) -> list[JSONDict]:
        batch = list(itertools.islice(itertools.chain(self._out_of_order, self._pending), limit))
        for entry in batch:
            entry.handed_out = True
        # PTB confirms with the last id + 1, so the batch must be in id order.
        batch.sort(key=lambda entry: entry.update_id)
        return [entry.update for entry in batch]

    async def get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self._webhook is not None:
            raise ApiError(409, WEBHOOK_ACTIVE)
        if "allowed_updates" in params:
            allowed = params["allowed_updates"] or []
            self._allowed_updates = frozenset(allowed) if allowed else None
        self._confirm(int(params.get("offset", 0)))
        limit = min(max(int(params.get("limit", 100)), 1), 100)
        deadline = time.monotonic() + float(params.get("timeout", 0))
        self._poll_generation += 1
        generation = self._poll_generation
        self._ready.fire()  # an older long poll ends with a conflict
        while True:
            batch = self._batch(limit)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self._closing:
                return batch
            self._parked_polls += 1
            self._progress.fire()
            try:
                await self._ready.wait(remaining)
            finally:
                self._parked_polls -= 1
                self._progress.fire()
            if generation != self._poll_generation:
                raise ApiError(409, POLL_TERMINATED)
            if self._webhook is not None:
                raise ApiError(409, WEBHOOK_ACTIVE)

    # -- webhook --------------------------------------------------------------------------

    async def set_webhook(self, params: JSONDict) -> bool:
        url = str(params.get("url", ""))
        if not url:
            return await self.delete_webhook(params)
        if not url.startswith(("https://", "http://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(secret):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        max_connections = int(params.get("max_connections", 40))
        if not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        await self._stop_webhook()
        if params.get("drop_pending_updates"):
            self._drop_pending()
        if "allowed_updates" in params:
            self._allowed_updates = frozenset(params["allowed_updates"] or []) or None
        if self._webhook_session is None:
            self._webhook_session = aiohttp.ClientSession()
        self._webhook = _Webhook(url, secret, max_connections)
        self._webhook.workers = [
            asyncio.create_task(self._deliver_webhook(self._webhook))
            for _ in range(max_connections)
        ]
        self._ready.fire()
        return True

    async def delete_webhook(self, params: JSONDict) -> bool:
        await self._stop_webhook()
        if params.get("drop_pending_updates"):
            self._drop_pending()
        return True

    async def get_webhook_info(self, params: JSONDict) -> JSONDict:
        pending = self.undelivered + self._webhook_posts
        hook = self._webhook
        if hook is None:
            return {"url": "", "has_custom_certificate": False, "pending_update_count": pending}
        info: JSONDict = {
            "url": hook.url,
            "has_custom_certificate": False,
            "pending_update_count": pending,
            "max_connections": hook.max_connections,
            "ip_address": "127.0.0.1",
        }
        if self._allowed_updates is not None:
            info["allowed_updates"] = sorted(self._allowed_updates)
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
        return info

    def _drop_pending(self) -> None:
        self._pending.clear()
        self._out_of_order.clear()
        self._progress.fire()

    async def _stop_webhook(self) -> None:
        hook, self._webhook = self._webhook, None
        if hook is not None:
            for worker in hook.workers:
                worker.cancel()
            await asyncio.gather(*hook.workers, return_exceptions=True)
        if self._closing and self._webhook_session is not None:
            await self._webhook_session.close()
            self._webhook_session = None

    def _take_for_webhook(self) -> _Pending | None:
        for queue in (self._out_of_order, self._pending):
            if queue:
                return queue.popleft()
        return None

    async def _deliver_webhook(self, hook: _Webhook) -> None:
        """One of max_connections workers POSTing pending updates to the webhook URL."""
        assert self._webhook_session is not None
        headers = {}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        while True:
            entry = self._take_for_webhook()
            if entry is None:
                await self._ready.wait(None)
                continue
            self._webhook_posts += 1
            try:
                async with self._webhook_session.post(
                    hook.url, json=entry.update, headers=headers
                ) as response:
                    failure = (
                        None
                        if response.status < 300
                        else f"Wrong response from the webhook: {response.status} {response.reason}"
                    )
            except (aiohttp.ClientError, TimeoutError) as error:
                failure = f"Connection failed: {error}"
            except asyncio.CancelledError:
                self._out_of_order.appendleft(entry)  # the webhook was removed mid-post
                raise
            finally:
                self._webhook_posts -= 1
            if failure is None:
                self._progress.fire()
            else:
                hook.last_error_date = int(time.time())
                hook.last_error_message = failure
                self._out_of_order.appendleft(entry)
                await asyncio.sleep(WEBHOOK_RETRY_SECONDS)
