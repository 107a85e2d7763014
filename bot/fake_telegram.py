"""A loopback fake of the Telegram Bot API, faithful to what python-telegram-bot sends and expects.

It serves ``/bot<token>/<method>`` and ``/file/bot<token>/<file_path>`` on 127.0.0.1, keeps
the state Telegram keeps (pending updates with offset confirmation, per-chat messages, files,
webhook, commands, answered callback queries) and answers with the same JSON and the same error
texts, so a real ``telegram.ext.Application`` runs against it unchanged. ``FakeUser`` plays a
person in a private chat: sends text and documents, taps inline buttons, waits for the replies.

The scenario helpers take ``timeout`` in seconds (like ``asyncio.wait_for``) and raise
``TimeoutError`` with what the chat does contain, which reads better in a failing test than a
bare cancellation; hence the ASYNC109 exemptions.

Used by the end-to-end tests, the benchmarks and ``labelbot demo``; it imports no project code.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

JSONDict = dict[str, Any]

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # what the Bot API accepts as a multipart upload
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # the largest file getFile hands out
IDLE_QUIET_SECONDS = 0.05
WEBHOOK_RETRY_SECONDS = 0.1

# Update types Telegram delivers only when asked for explicitly in allowed_updates.
_OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
# Methods that move updates rather than act on chats: random faults spare them, as the point of
# fault_rate is to stress the bot's replies, not to stall its polling loop.
_PLUMBING_METHODS = frozenset(
    {"getupdates", "getme", "setwebhook", "deletewebhook", "getwebhookinfo"}
)
# Form fields whose values are plain strings; every other field is JSON-encoded by the client.
_STRING_FIELDS = frozenset(
    [
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "url",
        "secret_token",
        "file_id",
        "action",
        "language_code",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "title",
        "performer",
        "photo",
        "audio",
        "video",
        "document",
        "thumbnail",
    ]
)
_CHAT_ACTIONS = frozenset(
    [
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ]
)
_MEDIA_FIELDS = ("photo", "audio", "video", "document")
_BOT_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")

_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
_QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
_POLL_TERMINATED = (
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


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One request the bot made; ``at`` is ``time.monotonic()`` when it arrived."""

    method: str
    params: JSONDict
    at: float


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart request, as it appears in ``ApiCall.params``."""

    file_name: str
    mime_type: str
    content: bytes


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


def _bad_request(problem: str) -> ApiError:
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


@dataclass(slots=True)
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    file_name: str
    mime_type: str
    content: bytes

    def describe(self) -> JSONDict:
        """The File object getFile returns."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.content),
            "file_path": self.file_path,
        }


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


class _Signal:
    """Wakes everyone waiting right now; whoever waits later waits for the next fire."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None) -> None:  # noqa: ASYNC109
        """Return on the next fire or after ``timeout`` seconds, whichever comes first."""
        # Not asyncio.wait_for: on Python 3.11 it loses a cancel of the waiting task that
        # arrives as the event fires, and a cancelled simulated worker would go on forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()


def _utf16_len(text: str) -> int:
    """Entity offsets and lengths count UTF-16 code units, as in the Bot API."""
    return len(text.encode("utf-16-le")) // 2


def _command_entities(text: str) -> list[JSONDict]:
    return [
        {
            "type": "bot_command",
            "offset": _utf16_len(text[: match.start()]),
            "length": _utf16_len(match.group()),
        }
        for match in _BOT_COMMAND.finditer(text)
    ]


_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "blockquote": "blockquote",
}


class _HtmlEntityParser(HTMLParser):
    """Turns Telegram-flavoured HTML into plain text plus entities, rejecting what Telegram does."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.entities: list[JSONDict] = []
        self._position = 0
        self._open: list[tuple[str, JSONDict]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        kind = _HTML_ENTITY_TYPES.get(tag)
        if kind is None or (tag == "span" and attributes.get("class") != "tg-spoiler"):
            raise _bad_request(f'can\'t parse entities: Unsupported start tag "{tag}"')
        entity: JSONDict = {"type": kind, "offset": self._position}
        if tag == "a":
            entity["url"] = attributes.get("href") or ""
        if tag == "code" and self._open and self._open[-1][0] == "pre":
            # <pre><code class="language-x"> is one pre entity carrying the language.
            language = (attributes.get("class") or "").removeprefix("language-")
            if language:
                self._open[-1][1]["language"] = language
            entity = {}
        self._open.append((tag, entity))

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            raise _bad_request(f'can\'t parse entities: Unmatched end tag "{tag}"')
        _, entity = self._open.pop()
        if entity and self._position > entity["offset"]:
            entity["length"] = self._position - entity["offset"]
            self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self._position += _utf16_len(data)

    def parse(self, markup: str) -> tuple[str, list[JSONDict]]:
        self.feed(markup)
        self.close()
        if self._open:
            tag = self._open[-1][0]
            raise _bad_request(
                f"can't parse entities: Can't find end tag corresponding to start tag \"{tag}\""
            )
        self.entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
        return "".join(self.parts), self.entities


def _formatted(params: JSONDict, text_field: str, entities_field: str) -> JSONDict:
    """The text (or caption) and its entities as Telegram stores them; {} if absent or empty.

    HTML is parsed into entities like Telegram does; Markdown modes are stored verbatim.
    """
    text = str(params.get(text_field) or "")
    entities = params.get(entities_field)
    if entities is None and str(params.get("parse_mode", "")).upper() == "HTML":
        text, entities = _HtmlEntityParser().parse(text)
    if not text:
        return {}
    content: JSONDict = {text_field: text}
    if entities:
        content[entities_field] = entities
    return content


def _inline_keyboard(markup: Any) -> JSONDict | None:
    """The reply_markup a message keeps: only inline keyboards are echoed back by Telegram."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return None
    for row in rows:
        for button in row:
            if not button.get("text"):
                raise _bad_request("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise _bad_request("BUTTON_DATA_INVALID")
            if len(button) < 2:
                raise _bad_request("text buttons are unallowed in the inline keyboard")
    return {"inline_keyboard": rows}


def _buttons(message: JSONDict) -> list[JSONDict]:
    markup = message.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def _message_text(message: JSONDict) -> str:
    return str(message.get("text", message.get("caption", "")))


def _decode_field(name: str, value: str) -> Any:
    """Undo PTB's form encoding: strings are sent as-is, everything else as JSON."""
    if name in _STRING_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _update_type(update: JSONDict) -> str:
    kind = next((key for key in update if key != "update_id"), None)
    if kind is None:
        raise ValueError(f"an update needs a payload besides its update_id: {update!r}")
    return kind


class FakeUser:
    """A person in a private chat with the bot."""

    def __init__(
        self,
        telegram: FakeTelegram,
        user_id: int,
        first_name: str,
        username: str | None,
        language_code: str,
    ) -> None:
        self.id = user_id
        self.first_name = first_name
        self.username = username
        self.language_code = language_code
        self.blocked = False
        self.alerts: list[JSONDict] = []
        self._telegram = telegram
        self._messages: dict[int, JSONDict] = {}  # live messages of both sides, by message_id
        self._next_message_id = 1
        self._alerts_seen = 0
        self._changed = _Signal()
        self.sender: JSONDict = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": language_code,
        }
        self.chat: JSONDict = {"id": user_id, "type": "private", "first_name": first_name}
        if username is not None:
            self.sender["username"] = username
            self.chat["username"] = username
        self.chat_instance = str(-(10**18) - user_id)

    def __repr__(self) -> str:
        return f"FakeUser(id={self.id}, first_name={self.first_name!r})"

    # -- what the person sees -------------------------------------------------------------

    @property
    def messages(self) -> list[JSONDict]:
        """The bot's messages in this chat in order, as they look now (edits applied)."""
        return [message for message in self._messages.values() if message["from"]["is_bot"]]

    @property
    def last(self) -> JSONDict:
        """The newest bot message; LookupError if the bot has not written yet."""
        for message in reversed(self._messages.values()):
            if message["from"]["is_bot"]:
                return message
        raise LookupError(f"the bot has sent no message to user {self.id}")

    def texts(self) -> list[str]:
        """Text or caption of each bot message, in order."""
        return [_message_text(message) for message in self.messages]

    async def wait_for(
        self,
        predicate: Callable[[JSONDict], bool] | str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> JSONDict:
        """Wait until a bot message matches (text/caption contains the string, or the predicate
        holds) and return the newest such message."""
        matches = (
            predicate
            if callable(predicate)
            else (lambda message: predicate in _message_text(message))
        )
        deadline = time.monotonic() + timeout
        while True:
            for message in reversed(self.messages):
                if matches(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"no bot message matching {predicate!r} for user {self.id} within "
                    f"{timeout}s; the bot wrote: {self.texts()!r}"
                )
            await self._changed.wait(remaining)

    async def wait_alert(self, timeout: float = 5.0) -> JSONDict:  # noqa: ASYNC109
        """Return the next answerCallbackQuery (params) not yet returned by wait_alert."""
        deadline = time.monotonic() + timeout
        while self._alerts_seen >= len(self.alerts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no callback answer for user {self.id} within {timeout}s")
            await self._changed.wait(remaining)
        self._alerts_seen += 1
        return self.alerts[self._alerts_seen - 1]

    # -- what the person does -------------------------------------------------------------

    async def send_text(self, text: str, *, reply_to: JSONDict | None = None) -> int:
        """Send a message (optionally as a reply to a bot message); commands get bot_command
        entities. Returns the update_id."""
        content: JSONDict = {"text": text}
        if reply_to is not None:
            content["reply_to_message"] = reply_to
        message = self._user_message(content, "entities", text)
        return self._telegram.push_update({"message": message})

    async def send_document(
        self,
        content: bytes,
        file_name: str,
        *,
        caption: str | None = None,
        mime_type: str = "application/octet-stream",
    ) -> int:
        """Send a file as a document, with an optional caption. Returns the update_id."""
        content_fields: JSONDict = {
            "document": self._telegram.add_user_file(content, file_name, mime_type)
        }
        if caption is not None:
            content_fields["caption"] = caption
        message = self._user_message(content_fields, "caption_entities", caption or "")
        return self._telegram.push_update({"message": message})

    async def press(self, button_text: str, *, message_id: int | None = None) -> int:
        """Tap the inline button with this text on the newest bot message that has it (or on
        ``message_id``). Returns the update_id; LookupError names the buttons there are."""
        candidates = (
            [self._bot_message(message_id)] if message_id is not None else reversed(self.messages)
        )
        offered: list[str] = []
        for message in candidates:
            for button in _buttons(message):
                if button["text"] == button_text and "callback_data" in button:
                    return self._push_callback(message, str(button["callback_data"]))
                offered.append(f"{button['text']!r} (message {message['message_id']})")
        listing = ", ".join(offered) or "none"
        raise LookupError(f"user {self.id} sees no button {button_text!r}; buttons: {listing}")

    async def press_data(self, data: str, message_id: int) -> int:
        """Send a callback query with arbitrary data from a bot message (forged or replayed)."""
        return self._push_callback(self._bot_message(message_id), data)

    # -- the fake's side of the chat ------------------------------------------------------

    def _user_message(self, content: JSONDict, entities_field: str, text: str) -> JSONDict:
        message: JSONDict = {
            "message_id": self._take_message_id(),
            "from": self.sender,
            "chat": self.chat,
            "date": int(time.time()),
            **content,
        }
        entities = _command_entities(text)
        if entities:
            message[entities_field] = entities
        self._store(message)
        return message

    def _bot_message(self, message_id: int) -> JSONDict:
        message = self._messages.get(message_id)
        if message is None or not message["from"]["is_bot"]:
            raise LookupError(f"user {self.id} has no bot message {message_id}")
        return message

    def _push_callback(self, message: JSONDict, data: str) -> int:
        query_id = self._telegram._register_callback_query(self)
        query = {
            "id": query_id,
            "from": self.sender,
            "message": message,
            "chat_instance": self.chat_instance,
            "data": data,
        }
        return self._telegram.push_update({"callback_query": query})

    def _take_message_id(self) -> int:
        message_id = self._next_message_id
        self._next_message_id += 1
        return message_id

    def _store(self, message: JSONDict) -> None:
        """Add or replace a message; stored dicts are never mutated, so snapshots stay valid."""
        self._messages[message["message_id"]] = message
        self._changed.fire()

    def _delete(self, message_id: int) -> None:
        del self._messages[message_id]
        self._changed.fire()

    def _add_alert(self, params: JSONDict) -> None:
        self.alerts.append(params)
        self._changed.fire()


MethodHandler = Callable[[JSONDict], Awaitable[Any]]


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
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._callback_queries: dict[str, tuple[FakeUser, bool]] = {}
        self._next_callback_query = 4_000_000_000_000_000_000 + secrets.randbelow(10**9)
        self._faults: dict[str, deque[_Fault]] = {}
        self._random_faults: _RandomFaults | None = None
        # Updates: in-order entries confirmed by offset prefix, plus out-of-order re-sends.
        self._updates_by_id: dict[int, JSONDict] = {}
        self._last_update_id = 0
        self._pending: deque[_Pending] = deque()
        self._out_of_order: deque[_Pending] = deque()
        self._updates_ready = _Signal()
        self._allowed_updates: frozenset[str] | None = None
        self._poll_generation = 0
        self._webhook: _Webhook | None = None
        self._webhook_session: aiohttp.ClientSession | None = None
        self._webhook_posts = 0
        # Idleness: requests being served (parked long polls excluded) and the last change.
        self._in_flight = 0
        self._parked_polls = 0
        self._last_activity = time.monotonic()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, MethodHandler] = {
            name.lower(): handler
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "sendMessage": self._send_message,
                "sendPhoto": self._media_sender("photo"),
                "sendAudio": self._media_sender("audio"),
                "sendVideo": self._media_sender("video"),
                "sendDocument": self._media_sender("document"),
                "editMessageText": self._edit_message_text,
                "editMessageCaption": self._edit_message_caption,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "getFile": self._get_file,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "sendChatAction": self._send_chat_action,
            }.items()
        }

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        # handler_cancellation: a long poll whose client went away must not keep waiting.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._closing = True
        self._updates_ready.fire()
        await self._stop_webhook()
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
        user = FakeUser(self, user_id, first_name, username, language_code)
        self._users[user_id] = user
        return user

    def push_update(self, update: JSONDict) -> int:
        """Queue a raw update (update_id assigned if missing) and deliver it; returns its id.

        An update whose id is not above every earlier one counts as re-sent and is delivered
        again even though the bot may have confirmed that id already.
        """
        if "update_id" not in update:
            update = {"update_id": self._last_update_id + 1, **update}
        update_id = int(update["update_id"])
        self._register_sender(update)
        self._updates_by_id.setdefault(update_id, update)
        self._last_activity = time.monotonic()
        if not self._wants(_update_type(update)):
            return update_id
        if update_id > self._last_update_id:
            self._last_update_id = update_id
            self._pending.append(_Pending(update))
        else:
            self._out_of_order.append(_Pending(update))
        self._updates_ready.fire()
        return update_id

    def redeliver(self, update_id: int) -> int:
        """Push the identical update again (same update_id), as Telegram does after a crash."""
        update = self._updates_by_id.get(update_id)
        if update is None:
            raise LookupError(f"no update {update_id} was ever pushed")
        return self.push_update(update)

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
        fault = _Fault(
            status=status,
            description=description or _default_description(status, retry_after),
            retry_after=retry_after,
            times=times,
            chat_id=chat_id,
        )
        self._faults.setdefault(method.lower(), deque()).append(fault)

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
        self._random_faults = (
            _RandomFaults(probability, tuple(statuses), retry_after, random.Random(seed))
            if probability > 0
            else None
        )

    def add_user_file(self, content: bytes, file_name: str, mime_type: str) -> JSONDict:
        """Store a file as if a user had uploaded it; returns its Document object."""
        stored = self._store_file(content, file_name, mime_type, "documents")
        return self._media_object("document", stored, {})

    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until every pushed update was confirmed or delivered, no request is being served
        (parked long polls aside) and nothing happened for IDLE_QUIET_SECONDS."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            busy = (
                self._pending
                or self._out_of_order
                or self._webhook_posts
                or self._in_flight > self._parked_polls
            )
            if not busy and now - self._last_activity >= IDLE_QUIET_SECONDS:
                return
            if now >= deadline:
                raise TimeoutError(
                    f"not idle after {timeout}s: {len(self._pending) + len(self._out_of_order)} "
                    f"updates pending, {self._in_flight - self._parked_polls} requests in flight"
                )
            await asyncio.sleep(IDLE_QUIET_SECONDS / 5)

    # -- HTTP -----------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return ApiError(401, "Unauthorized").response()
        method = request.match_info["method"]
        params = await _read_params(request)
        self.calls.append(ApiCall(method, params, time.monotonic()))
        handler = self._methods.get(method.lower())
        if handler is None:
            return ApiError(404, "Not Found").response()
        self._in_flight += 1
        self._last_activity = time.monotonic()
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            self._raise_injected_fault(method.lower(), params)
            result = await handler(params)
        except ApiError as error:
            return error.response()
        finally:
            self._in_flight -= 1
            self._last_activity = time.monotonic()
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        stored = self._files_by_path.get(request.match_info["file_path"])
        if request.match_info["token"] != self.token or stored is None:
            return ApiError(404, "Not Found").response()
        return web.Response(body=stored.content, content_type="application/octet-stream")

    def _raise_injected_fault(self, method: str, params: JSONDict) -> None:
        queued = self._faults.get(method)
        if queued:
            for fault in queued:
                if fault.chat_id is None or fault.chat_id == params.get("chat_id"):
                    fault.times -= 1
                    if fault.times <= 0:
                        queued.remove(fault)
                    raise fault.error()
        if self._random_faults is not None and method not in _PLUMBING_METHODS:
            error = self._random_faults.draw()
            if error is not None:
                raise error

    # -- updates --------------------------------------------------------------------------

    def _wants(self, update_type: str) -> bool:
        if self._allowed_updates is None:
            return update_type not in _OPT_IN_UPDATE_TYPES
        return update_type in self._allowed_updates

    def _register_sender(self, update: JSONDict) -> None:
        """Make the chat of a raw update's private sender known, so the bot can answer it."""
        body = update.get(_update_type(update))
        sender = body.get("from") if isinstance(body, dict) else None
        if sender and not sender.get("is_bot") and sender["id"] not in self._users:
            self.user(
                sender["id"],
                sender.get("first_name", ""),
                username=sender.get("username"),
                language_code=sender.get("language_code", "en"),
            )

    def _confirm(self, offset: int) -> None:
        if offset < 0:  # keep only the last -offset updates
            while len(self._pending) > -offset:
                self._pending.popleft()
            return
        while self._pending and self._pending[0].update_id < offset:
            self._pending.popleft()
        if self._out_of_order:
            self._out_of_order = deque(
                entry
                for entry in self._out_of_order
                if not (entry.handed_out and entry.update_id < offset)
            )

    def _batch(self, limit: int) -> list[JSONDict]:
        batch = list(itertools.islice(itertools.chain(self._out_of_order, self._pending), limit))
        for entry in batch:
            entry.handed_out = True
        # PTB confirms with the last id + 1, so the batch must be in id order.
        batch.sort(key=lambda entry: entry.update_id)
        return [entry.update for entry in batch]

    def _take_for_webhook(self) -> _Pending | None:
        for queue in (self._out_of_order, self._pending):
            if queue:
                return queue.popleft()
        return None

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self._webhook is not None:
            raise ApiError(409, _WEBHOOK_ACTIVE)
        if "allowed_updates" in params:
            allowed = params["allowed_updates"] or []
            self._allowed_updates = frozenset(allowed) if allowed else None
        self._confirm(int(params.get("offset", 0)))
        limit = min(max(int(params.get("limit", 100)), 1), 100)
        deadline = time.monotonic() + float(params.get("timeout", 0))
        self._poll_generation += 1
        generation = self._poll_generation
        self._updates_ready.fire()  # an older long poll ends with a conflict
        while True:
            batch = self._batch(limit)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self._closing:
                return batch
            self._parked_polls += 1
            try:
                await self._updates_ready.wait(remaining)
            finally:
                self._parked_polls -= 1
            if generation != self._poll_generation:
                raise ApiError(409, _POLL_TERMINATED)
            if self._webhook is not None:
                raise ApiError(409, _WEBHOOK_ACTIVE)

    async def _set_webhook(self, params: JSONDict) -> bool:
        url = str(params.get("url", ""))
        if not url:
            return await self._delete_webhook(params)
        if not url.startswith(("https://", "http://")):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(secret):
            raise _bad_request("bad webhook: secret token contains unallowed characters")
        max_connections = int(params.get("max_connections", 40))
        if not 1 <= max_connections <= 100:
            raise _bad_request("bad webhook: max_connections must be between 1 and 100")
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
        self._updates_ready.fire()
        return True

    async def _delete_webhook(self, params: JSONDict) -> bool:
        await self._stop_webhook()
        if params.get("drop_pending_updates"):
            self._drop_pending()
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        pending = len(self._pending) + len(self._out_of_order) + self._webhook_posts
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

    async def _stop_webhook(self) -> None:
        hook, self._webhook = self._webhook, None
        if hook is not None:
            for worker in hook.workers:
                worker.cancel()
            await asyncio.gather(*hook.workers, return_exceptions=True)
        if self._closing and self._webhook_session is not None:
            await self._webhook_session.close()
            self._webhook_session = None

    async def _deliver_webhook(self, hook: _Webhook) -> None:
        """One of max_connections workers POSTing pending updates to the webhook URL."""
        assert self._webhook_session is not None
        headers = {}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        while True:
            entry = self._take_for_webhook()
            if entry is None:
                await self._updates_ready.wait(None)
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
                self._last_activity = time.monotonic()
            if failure is not None:
                hook.last_error_date = int(time.time())
                hook.last_error_message = failure
                self._out_of_order.appendleft(entry)
                await asyncio.sleep(WEBHOOK_RETRY_SECONDS)

    # -- methods --------------------------------------------------------------------------

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self.bot,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _chat(self, params: JSONDict) -> FakeUser:
        """The private chat a call aims at; 400 if unknown, 403 if the user blocked the bot."""
        user = self._users.get(params.get("chat_id", 0))
        if user is None:
            raise _bad_request("chat not found")
        if user.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return user

    def _send(self, user: FakeUser, params: JSONDict, content: JSONDict) -> JSONDict:
        keyboard = _inline_keyboard(params.get("reply_markup"))
        reply = params.get("reply_parameters") or {}
        replied = user._messages.get(reply.get("message_id", 0))
        if reply and replied is None and not reply.get("allow_sending_without_reply"):
            raise _bad_request("message to be replied not found")
        message: JSONDict = {
            "message_id": user._take_message_id(),
            "from": self.bot,
            "chat": user.chat,
            "date": int(time.time()),
            **content,
        }
        if replied is not None:
            message["reply_to_message"] = replied
        if keyboard is not None:
            message["reply_markup"] = keyboard
        user._store(message)
        return message

    async def _send_message(self, params: JSONDict) -> JSONDict:
        user = self._chat(params)
        content = _formatted(params, "text", "entities")
        text = content.get("text", "")
        if not text.strip():
            raise _bad_request("message text is empty")
        if _utf16_len(text) > 4096:
            raise _bad_request("message is too long")
        return self._send(user, params, content)

    def _media_sender(self, kind: str) -> MethodHandler:
        """The handler of sendPhoto/sendAudio/sendVideo/sendDocument for this kind of media."""

        async def send_media(params: JSONDict) -> JSONDict:
            user = self._chat(params)
            if kind not in params:
                raise _bad_request(f"there is no {kind} in the request")
            stored = self._file_input(params, kind)
            content = _formatted(params, "caption", "caption_entities")
            if _utf16_len(content.get("caption", "")) > 1024:
                raise _bad_request("message caption is too long")
            content[kind] = self._media_object(kind, stored, params)
            return self._send(user, params, content)

        return send_media

    def _file_input(self, params: JSONDict, kind: str) -> _StoredFile:
        """The file a send* call refers to: an upload, a known file_id, or an HTTP URL."""
        value = params[kind]
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if isinstance(value, Upload):
            return self._store_file(value.content, value.file_name, value.mime_type, kind + "s")
        if isinstance(value, str) and value in self._files:
            return self._files[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            # Telegram would fetch the URL; offline, the file keeps its name but no bytes.
            name = PurePosixPath(value.split("?")[0]).name or kind
            return self._store_file(b"", name, "application/octet-stream", kind + "s")
        raise _bad_request("wrong file identifier/HTTP URL specified")

    def _store_file(
        self, content: bytes, file_name: str, mime_type: str, folder: str
    ) -> _StoredFile:
        number = len(self._files) + 1
        stored = _StoredFile(
            file_id=f"BQACAgIAAxkBAAI{number:06d}{secrets.token_urlsafe(30)}",
            file_unique_id=f"AgAD{secrets.token_urlsafe(9)}",
            file_path=f"{folder}/file_{number}{PurePosixPath(file_name).suffix}",
            file_name=file_name,
            mime_type=mime_type,
            content=content,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _media_object(self, kind: str, stored: _StoredFile, params: JSONDict) -> Any:
        """The photo sizes / audio / video / document object a message carries.

        Media are not decoded: photo and video dimensions come from the call or default.
        """
        common: JSONDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
        }
        if kind == "photo":
            return [{**common, "width": 1280, "height": 960}]
        described = {**common, "file_name": stored.file_name, "mime_type": stored.mime_type}
        if kind == "document":
            return described
        described["duration"] = int(params.get("duration", 0))
        if kind == "video":
            described["width"] = int(params.get("width", 1280))
            described["height"] = int(params.get("height", 720))
        for tag in ("title", "performer"):
            if kind == "audio" and tag in params:
                described[tag] = params[tag]
        return described

    def _message_to_edit(self, params: JSONDict) -> tuple[FakeUser, JSONDict]:
        if "inline_message_id" in params:
            raise _bad_request("inline messages are not supported by the fake")
        user = self._chat(params)
        message = user._messages.get(params.get("message_id", 0))
        if message is None:
            raise _bad_request("message to edit not found")
        if not message["from"]["is_bot"]:
            raise _bad_request("message can't be edited")
        return user, message

    def _edit(
        self,
        user: FakeUser,
        message: JSONDict,
        params: JSONDict,
        replaced: tuple[str, ...],
        content: JSONDict,
    ) -> JSONDict:
        """Replace the ``replaced`` fields by ``content``; a missing reply_markup removes the
        keyboard, as in Telegram."""
        unchanged = {key: value for key, value in message.items() if key != "edit_date"}
        edited = {
            key: value
            for key, value in unchanged.items()
            if key not in replaced and key != "reply_markup"
        }
        edited.update(content)
        keyboard = _inline_keyboard(params.get("reply_markup"))
        if keyboard is not None:
            edited["reply_markup"] = keyboard
        if edited == unchanged:
            raise _bad_request(_NOT_MODIFIED)
        edited["edit_date"] = int(time.time())
        user._store(edited)
        return edited

    async def _edit_message_text(self, params: JSONDict) -> JSONDict:
        user, message = self._message_to_edit(params)
        if "text" not in message:
            raise _bad_request("there is no text in the message to edit")
        content = _formatted(params, "text", "entities")
        if not content.get("text", "").strip():
            raise _bad_request("message text is empty")
        return self._edit(user, message, params, ("text", "entities"), content)

    async def _edit_message_caption(self, params: JSONDict) -> JSONDict:
        user, message = self._message_to_edit(params)
        if not any(kind in message for kind in _MEDIA_FIELDS):
            raise _bad_request("there is no caption in the message to edit")
        content = _formatted(params, "caption", "caption_entities")
        return self._edit(user, message, params, ("caption", "caption_entities"), content)

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        user, message = self._message_to_edit(params)
        return self._edit(user, message, params, (), {})

    async def _delete_message(self, params: JSONDict) -> bool:
        user = self._chat(params)
        message_id = params.get("message_id")
        if message_id not in user._messages:
            raise _bad_request("message to delete not found")
        user._delete(message_id)
        return True

    def _register_callback_query(self, user: FakeUser) -> str:
        self._next_callback_query += 1
        query_id = str(self._next_callback_query)
        self._callback_queries[query_id] = (user, False)
        return query_id

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        known = self._callback_queries.get(query_id)
        if known is None or known[1]:
            raise _bad_request(_QUERY_TOO_OLD)
        user = known[0]
        self._callback_queries[query_id] = (user, True)
        user._add_alert(params)
        return True

    async def _get_file(self, params: JSONDict) -> JSONDict:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise _bad_request("invalid file_id")
        if len(stored.content) > MAX_DOWNLOAD_BYTES:
            raise _bad_request("file is too big")
        return stored.describe()

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        for command in commands:
            if not _COMMAND_NAME.fullmatch(str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[_commands_key(params)] = commands
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return self._commands.get(_commands_key(params), [])

    async def _send_chat_action(self, params: JSONDict) -> bool:
        self._chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True


def _commands_key(params: JSONDict) -> tuple[str, str]:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(params.get("language_code", ""))


async def _read_params(request: web.Request) -> JSONDict:
    """Parameters from the query string and a JSON, urlencoded or multipart body."""
    params: JSONDict = {name: _decode_field(name, value) for name, value in request.query.items()}
    if request.content_type == "application/json":
        if request.body_exists:
            params.update(await request.json())
        return params
    form = await request.post()
    for name, value in form.items():
        if isinstance(value, web.FileField):
            params[name] = Upload(value.filename, value.content_type, value.file.read())
        else:
            text = value if isinstance(value, str) else bytes(value).decode()
            params[name] = _decode_field(name, text)
    return params
