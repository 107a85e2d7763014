"""Telegram's error answers with its own texts, and faults injected on demand: the next calls of
a method (to one chat or any), or any call at random."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass

from aiohttp import web

from bot.fakegram.wire import JSONDict

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
BLOCKED = "Forbidden: bot was blocked by the user"
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
POLL_TERMINATED = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
_STATUS_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
# Methods that move updates rather than act on chats: random faults spare them, as the point of
# fault_rate is to stress the bot's replies, not to stall its polling loop.
_PLUMBING_METHODS = frozenset(
    {"getupdates", "getme", "setwebhook", "deletewebhook", "getwebhookinfo"}
)


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status, description and optional retry_after."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def response(self) -> web.Response:
        payload: JSONDict = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            payload["parameters"] = {"retry_after": self.retry_after}
        return web.json_response(payload, status=self.status)


def bad_request(problem: str) -> ApiError:
    return ApiError(400, f"Bad Request: {problem}")


def _default_description(status: int, retry_after: int | None) -> str:
    if status == 429:
        return f"Too Many Requests: retry after {retry_after or 1}"
    return _STATUS_DESCRIPTIONS.get(status, "Internal Server Error")


@dataclass(slots=True)
class _Fault:
    status: int
    description: str
    retry_after: int | None
    times: int
    chat_id: int | None

    def error(self) -> ApiError:
        return ApiError(self.status, self.description, self.retry_after)


@dataclass(slots=True)
class _RandomFaults:
    probability: float
    statuses: tuple[int, ...]
    retry_after: int
    rng: random.Random

    def draw(self) -> ApiError | None:
        if self.rng.random() >= self.probability:
            return None
        status = self.rng.choice(self.statuses)
        retry_after = self.retry_after if status == 429 else None
        return ApiError(status, _default_description(status, retry_after), retry_after)


class Faults:
    """Failures queued per method by ``fail_next``, and random ones set by ``fail_randomly``."""

    def __init__(self) -> None:
        self._queued: dict[str, deque[_Fault]] = {}
        self._random: _RandomFaults | None = None

    def fail_next(
        self,
        method: str,
        status: int,
        description: str | None,
        retry_after: int | None,
        times: int,
        chat_id: int | None,
    ) -> None:
        fault = _Fault(
            status=status,
            description=description or _default_description(status, retry_after),
            retry_after=retry_after,
            times=times,
            chat_id=chat_id,
        )
        self._queued.setdefault(method.lower(), deque()).append(fault)

    def fail_randomly(
        self, probability: float, statuses: Collection[int], seed: int | None, retry_after: int
    ) -> None:
        self._random = (
            _RandomFaults(probability, tuple(statuses), retry_after, random.Random(seed))
            if probability > 0
            else None
        )

    def raise_due(self, method: str, params: JSONDict) -> None:
        """Raise the fault due for this call of ``method`` (lower case), if there is one."""
        queued = self._queued.get(method)
        if queued:
            for fault in queued:
                if fault.chat_id is None or fault.chat_id == params.get("chat_id"):
                    fault.times -= 1
                    if fault.times <= 0:
                        queued.remove(fault)
                    raise fault.error()
        if self._random is not None and method not in _PLUMBING_METHODS:
            error = self._random.draw()
            if error is not None:
                raise error
