"""Both HTTP transports against a loopback Bot API: same answers, same errors."""

import asyncio
import datetime as dtm
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.transport import AiohttpRequest, TransportKind, build_requests

TOKEN = "123456:TEST-token"
KINDS: list[TransportKind] = ["aiohttp", "httpx"]
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Label", "username": "label_bot"}
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


@dataclass(frozen=True)
class Upload:
    filename: str
    content: bytes
    content_type: str


@dataclass(frozen=True)
class Received:
    """One request as the fake Bot API saw it."""

    method: str
    content_type: str
    user_agent: str
    fields: dict[str, str]
    uploads: dict[str, Upload]


@dataclass
class FakeBotApi:
    """A loopback Bot API: records calls, answers ``ok`` unless a test scripts otherwise."""

    base_url: str = ""
    base_file_url: str = ""
    received: list[Received] = field(default_factory=list)
    replies: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def reply(self, method: str, status: int, **body: Any) -> None:
        self.replies[method] = (status, body)

    def calls(self, method: str) -> list[Received]:
        return [call for call in self.received if call.method == method]

    async def handle_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        form = await request.post()
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        uploads = {
            name: Upload(value.filename, value.file.read(), value.content_type)
            for name, value in form.items()
            if isinstance(value, web.FileField)
        }
        self.received.append(
            Received(
                method,
                request.content_type,
                request.headers.get("User-Agent", ""),
                fields,
                uploads,
            )
        )
        await asyncio.sleep(self.delays.get(method, 0))
        status, body = self.replies.get(method) or (200, {"ok": True, "result": _result(method)})
        return web.json_response(body, status=status)

    async def handle_file(self, request: web.Request) -> web.Response:
        return web.Response(body=self.files[request.match_info["path"]])


def _result(method: str) -> Any:
    message = {"message_id": 1, "date": 0, "chat": {"id": 42, "type": "private"}}
    return {
        "getMe": BOT_USER,
        "getUpdates": [{"update_id": 7, "message": {**message, "text": "hi"}}],
        "getFile": {"file_id": "doc1", "file_unique_id": "u1", "file_path": "documents/x.csv"},
    }.get(method, message)


class MakeRequest(Protocol):
    def __call__(self, **knobs: Any) -> BaseRequest: ...


OpenBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", api.handle_method)
    app.router.add_get("/file/bot{token}/{path:.+}", api.handle_file)
    # A short shutdown timeout drops handlers still sleeping past a client's timeout.
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    api.base_url = f"http://127.0.0.1:{port}/bot"
    api.base_file_url = f"http://127.0.0.1:{port}/file/bot"
    yield api
    await runner.cleanup()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> TransportKind:
    return request.param


@pytest.fixture
def make_request(kind: TransportKind) -> MakeRequest:
    """A request object of the transport under test, with HTTPXRequest's knobs."""

    def make(**knobs: Any) -> BaseRequest:
        return AiohttpRequest(**knobs) if kind == "aiohttp" else HTTPXRequest(**knobs)

    return make


@pytest.fixture
async def open_bot(telegram: FakeBotApi) -> AsyncIterator[OpenBot]:
    """Open a real Bot on the fake API; it is shut down when the test ends."""
    bots: list[Bot] = []

    async def open_(request: BaseRequest, get_updates_request: BaseRequest | None = None) -> Bot:
        bot = Bot(
            TOKEN,
            base_url=telegram.base_url,
            base_file_url=telegram.base_file_url,
            request=request,
            get_updates_request=get_updates_request or request,
        )
        bots.append(bot)
        await bot.initialize()
        return bot

    yield open_
    for bot in bots:
        await bot.shutdown()


async def test_get_me_returns_the_bot_user(make_request: MakeRequest, open_bot: OpenBot) -> None:
    bot = await open_bot(make_request())

    me = await bot.get_me()

    assert me.username == "label_bot"


async def test_send_message_posts_form_fields_with_the_keyboard(
    make_request: MakeRequest, open_bot: OpenBot, telegram: FakeBotApi
) -> None:
    bot = await open_bot(make_request())
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("positive", callback_data="a:1:pos")]])

    await bot.send_message(42, "Is this positive? ✓", reply_markup=keyboard)

    [call] = telegram.calls("sendMessage")
    assert call.content_type == "application/x-www-form-urlencoded"
    assert call.user_agent.startswith("python-telegram-bot")
    assert call.fields["chat_id"] == "42"
    assert call.fields["text"] == "Is this positive? ✓"
    assert json.loads(call.fields["reply_markup"]) == keyboard.to_dict()


async def test_photo_bytes_arrive_as_multipart_with_name_and_type(
    make_request: MakeRequest, open_bot: OpenBot, telegram: FakeBotApi
) -> None:
    bot = await open_bot(make_request())

    await bot.send_photo(42, TINY_PNG, caption="cat?", filename="cat.png")

    [call] = telegram.calls("sendPhoto")
    assert call.content_type == "multipart/form-data"
    assert call.fields == {"chat_id": "42", "caption": "cat?"}
    assert call.uploads["photo"] == Upload("cat.png", TINY_PNG, "image/png")


@pytest.mark.parametrize("read_file_handle", [True, False], ids=["read-first", "streamed"])
async def test_document_from_a_file_on_disk_arrives_intact(
    make_request: MakeRequest,
    open_bot: OpenBot,
    telegram: FakeBotApi,
    tmp_path: Path,
    read_file_handle: bool,
) -> None:
    bot = await open_bot(make_request())
    path = tmp_path / "ответы за май.csv"  # spaces and non-ASCII must survive unescaped
    content = b"item,worker,label\n" + b"t1,w1,pos\n" * 5000
    path.write_bytes(content)

    with path.open("rb") as handle:
        await bot.send_document(42, InputFile(handle, read_file_handle=read_file_handle))

    [call] = telegram.calls("sendDocument")
    assert call.uploads["document"] == Upload(path.name, content, "text/csv")


async def test_file_download_returns_the_bytes(
    make_request: MakeRequest, open_bot: OpenBot, telegram: FakeBotApi
) -> None:
    bot = await open_bot(make_request())
    telegram.files["documents/x.csv"] = b"id,text\nt1,hello\n"

    file = await bot.get_file("doc1")
    content = await file.download_as_bytearray()

    assert content == bytearray(b"id,text\nt1,hello\n")


async def test_flood_limit_raises_retry_after_with_the_delay(
    make_request: MakeRequest,
    open_bot: OpenBot,
    telegram: FakeBotApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # retry_after as timedelta, not deprecated int
    bot = await open_bot(make_request())
    telegram.reply(
        "sendMessage",
        429,
        ok=False,
        error_code=429,
        description="Too Many Requests: retry after 7",
        parameters={"retry_after": 7},
    )

    with pytest.raises(RetryAfter) as raised:
        await bot.send_message(42, "hi")

    assert raised.value.retry_after == dtm.timedelta(seconds=7)


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, BadRequest), (403, Forbidden), (500, NetworkError), (502, NetworkError)],
)
async def test_error_status_raises_the_matching_error_with_the_description(
    make_request: MakeRequest,
    open_bot: OpenBot,
    telegram: FakeBotApi,
    status: int,
    error: type[TelegramError],
) -> None:
    bot = await open_bot(make_request())
    description = f"Error {status}: something went wrong"
    telegram.reply("sendMessage", status, ok=False, error_code=status, description=description)

    with pytest.raises(error) as raised:
        await bot.send_message(42, "hi")

    assert type(raised.value) is error  # BadRequest and TimedOut also subclass NetworkError
    assert raised.value.message == description


async def test_refused_connection_raises_network_error(make_request: MakeRequest) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    request = make_request()
    bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot", request=request)

    with pytest.raises(NetworkError) as raised:
        await bot.initialize()  # initialize() calls getMe

    assert type(raised.value) is NetworkError
    await bot.shutdown()


async def test_server_slower_than_read_timeout_raises_timed_out(
    make_request: MakeRequest, open_bot: OpenBot, telegram: FakeBotApi
) -> None:
    bot = await open_bot(make_request(read_timeout=0.2))
    telegram.delays["sendMessage"] = 2.0

    with pytest.raises(TimedOut):
        await bot.send_message(42, "hi")


async def test_full_pool_raises_timed_out_saying_pool(
    make_request: MakeRequest, open_bot: OpenBot, telegram: FakeBotApi
) -> None:
    bot = await open_bot(make_request(connection_pool_size=1, pool_timeout=0.1))
    telegram.delays["sendMessage"] = 0.5
    slow = asyncio.create_task(bot.send_message(42, "takes the only connection"))
    await asyncio.sleep(0.1)

    with pytest.raises(TimedOut, match="Pool timeout"):
        await bot.get_me()

    await slow  # the first request still completes
    assert len(telegram.calls("sendMessage")) == 1


async def test_long_poll_longer_than_read_timeout_returns_updates(
    kind: TransportKind, open_bot: OpenBot, telegram: FakeBotApi
) -> None:
    request, get_updates_request = build_requests(
        kind, get_updates_read_timeout=0.2, connection_pool_size=4
    )
    bot = await open_bot(request, get_updates_request)
    telegram.delays["getUpdates"] = 0.5  # the server holds the poll, as Telegram does

    updates = await bot.get_updates(timeout=1)  # PTB adds the poll timeout to the read timeout

    assert [update.update_id for update in updates] == [7]
    assert telegram.calls("getUpdates")[0].fields["timeout"] == "1"


async def test_initialize_and_shutdown_are_idempotent_and_restartable(
    make_request: MakeRequest, telegram: FakeBotApi
) -> None:
    request = make_request()
    bot = Bot(TOKEN, base_url=telegram.base_url, request=request)

    for _ in range(2):
        await request.initialize()
        await request.initialize()
        assert (await bot.get_me()).username == "label_bot"
        await request.shutdown()
        await request.shutdown()

    with pytest.raises(NetworkError, match="not initialized"):
        await bot.get_me()
