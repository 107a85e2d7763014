"""The fake Bot API as python-telegram-bot sees it: a real Application and Bot run against it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from telegram import Bot, ForceReply, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.fakegram import FakeTelegram
from bot.transport import TransportKind, build_requests
from tests.test_e2e_worker import settled

TOKEN = "123456:TEST-TOKEN"
USER_ID = 1001


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Yes", callback_data="yes")],
            [InlineKeyboardButton("No", callback_data="no")],
        ]
    )
    await update.effective_message.reply_text(
        f"Welcome! args={context.args}", reply_markup=keyboard
    )


async def choose(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer(f"You chose {query.data}")
    await query.edit_message_text(f"Chosen: {query.data}")


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None and update.effective_message.text is not None
    await update.effective_message.reply_text(f"echo: {update.effective_message.text}")


async def measure_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message is not None and message.document is not None
    content = await (await context.bot.get_file(message.document.file_id)).download_as_bytearray()
    await message.reply_text(f"got {message.document.file_name}: {bytes(content)!r}")


def build_application(telegram: FakeTelegram, transport: TransportKind) -> Application:
    request, get_updates_request = build_requests(
        transport, get_updates_read_timeout=5.0, connection_pool_size=8
    )
    application = (
        ApplicationBuilder()
        .token(telegram.token)
        .base_url(telegram.base_url)
        .base_file_url(telegram.base_file_url)
        .request(request)
        .get_updates_request(get_updates_request)
        .build()
    )
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CallbackQueryHandler(choose))
    application.add_handler(MessageHandler(filters.Document.ALL, measure_document))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    return application


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as fake:
        yield fake


@pytest.fixture
async def polling_app(
    telegram: FakeTelegram, transport: TransportKind
) -> AsyncIterator[Application]:
    application = build_application(telegram, transport)
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0)
        yield application
        await application.updater.stop()
        await application.stop()


@pytest.fixture
async def bot(telegram: FakeTelegram, transport: TransportKind) -> AsyncIterator[Bot]:
    """A bare Bot on either HTTP transport: the fake must behave the same for both."""
    request, get_updates_request = build_requests(
        transport, get_updates_read_timeout=5.0, connection_pool_size=8
    )
    async with Bot(
        TOKEN,
        base_url=telegram.base_url,
        base_file_url=telegram.base_file_url,
        request=request,
        get_updates_request=get_updates_request,
    ) as b:
        yield b


async def test_command_with_entities_reaches_command_handler(
    telegram: FakeTelegram,
    polling_app: Application,
) -> None:
    ann = telegram.user(USER_ID, username="ann")

    await ann.send_text("/start sentiment-v1")

    welcome = await ann.wait_for("Welcome")
    assert welcome["text"] == "Welcome! args=['sentiment-v1']"
    assert welcome["from"]["is_bot"] is True
    assert welcome["chat"] == {
        "id": USER_ID,
        "type": "private",
        "first_name": "Ann",
        "username": "ann",
    }
    assert [
        button["text"] for row in welcome["reply_markup"]["inline_keyboard"] for button in row
    ] == ["Yes", "No"]


async def test_plain_text_is_echoed_and_message_ids_increase_per_chat(
    telegram: FakeTelegram,
    polling_app: Application,
) -> None:
    ann, bob = telegram.user(1), telegram.user(2, "Bob")

    await ann.send_text("hello")
    await bob.send_text("hi")
    await ann.send_text("again")

    await ann.wait_for("echo: again")
    await bob.wait_for("echo: hi")
    assert ann.texts() == ["echo: hello", "echo: again"]
    assert [message["message_id"] for message in ann.messages] == [3, 4]
    assert [message["message_id"] for message in bob.messages] == [2]


async def test_get_updates_returns_unconfirmed_updates_until_offset_passes_them(
    telegram: FakeTelegram, bot: Bot
) -> None:
    ann = telegram.user(USER_ID)
    first = await ann.send_text("one")
    second = await ann.send_text("two")

    fetched = await bot.get_updates()
    again = await bot.get_updates()
    after_first = await bot.get_updates(offset=first + 1)
    after_all = await bot.get_updates(offset=second + 1)

    assert [u.update_id for u in fetched] == [first, second]
    assert [u.update_id for u in again] == [first, second]
    assert [u.update_id for u in after_first] == [second]
    assert after_all == ()
    assert (await bot.get_webhook_info()).pending_update_count == 0


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    telegram: FakeTelegram, bot: Bot
) -> None:
    ann = telegram.user(USER_ID)
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await telegram.wait_long_poll()

    await ann.send_text("wake up")
    updates = await asyncio.wait_for(poll, 10)  # a third of the poll's own timeout

    assert [u.message.text for u in updates if u.message] == ["wake up"]


async def test_allowed_updates_drops_other_update_types(telegram: FakeTelegram, bot: Bot) -> None:
    ann = telegram.user(USER_ID)
    await bot.get_updates(allowed_updates=["callback_query"])

    await ann.send_text("ignored")
    message = await bot.send_message(
        USER_ID,
        "pick",
        reply_markup=InlineKeyboardMarkup.from_button(
            InlineKeyboardButton("Go", callback_data="go")
        ),
    )
    pressed = await ann.press("Go")

    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [pressed]
    assert updates[0].callback_query is not None
    assert updates[0].callback_query.message is not None
    assert updates[0].callback_query.message.message_id == message.message_id


async def test_press_drives_callback_query_handler(
    telegram: FakeTelegram,
    polling_app: Application,
) -> None:
    ann = telegram.user(USER_ID)
    await ann.send_text("/start")
    await ann.wait_for("Welcome")

    await ann.press("No")

    alert = await ann.wait_alert()
    edited = await ann.wait_for("Chosen: no")
    assert alert["text"] == "You chose no"
    assert "reply_markup" not in edited  # editing without a keyboard removes it, as in Telegram
    assert "edit_date" in edited
    assert ann.texts() == ["Chosen: no"]
    with pytest.raises(LookupError, match="sees no button 'Yes'"):
        await ann.press("Yes")


async def test_press_lists_the_buttons_on_offer(telegram: FakeTelegram, bot: Bot) -> None:
    ann = telegram.user(USER_ID)
    keyboard = InlineKeyboardMarkup.from_button(InlineKeyboardButton("Positive", callback_data="p"))
    await bot.send_message(USER_ID, "label it", reply_markup=keyboard)

    with pytest.raises(LookupError, match="'Positive'"):
        await ann.press("Negative")


async def test_editing_to_the_same_content_is_not_modified(
    telegram: FakeTelegram, bot: Bot
) -> None:
    telegram.user(USER_ID)
    sent = await bot.send_message(USER_ID, "same")

    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("same", chat_id=USER_ID, message_id=sent.message_id)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("new", chat_id=USER_ID, message_id=sent.message_id + 5)


async def test_edit_markup_replaces_the_keyboard(telegram: FakeTelegram, bot: Bot) -> None:
    ann = telegram.user(USER_ID)
    first = InlineKeyboardMarkup.from_button(InlineKeyboardButton("A", callback_data="a"))
    second = InlineKeyboardMarkup.from_button(InlineKeyboardButton("B", callback_data="b"))
    sent = await bot.send_message(USER_ID, "pick", reply_markup=first)

    await bot.edit_message_reply_markup(USER_ID, sent.message_id, reply_markup=second)

    assert ann.last["reply_markup"] == {"inline_keyboard": [[{"text": "B", "callback_data": "b"}]]}
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(USER_ID, sent.message_id, reply_markup=second)


async def test_callback_query_can_be_answered_once(telegram: FakeTelegram, bot: Bot) -> None:
    ann = telegram.user(USER_ID)
    keyboard = InlineKeyboardMarkup.from_button(InlineKeyboardButton("Go", callback_data="go"))
    await bot.send_message(USER_ID, "pick", reply_markup=keyboard)
    await ann.press("Go")
    (update,) = await bot.get_updates()
    assert update.callback_query is not None

    await update.callback_query.answer("Saved", show_alert=True)

    with pytest.raises(BadRequest, match="Query is too old"):
        await update.callback_query.answer("Saved again")
    assert ann.alerts == [
        {"callback_query_id": update.callback_query.id, "text": "Saved", "show_alert": True}
    ]


async def test_blocked_user_makes_sends_forbidden(telegram: FakeTelegram, bot: Bot) -> None:
    telegram.user(USER_ID)
    telegram.block(USER_ID)

    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(USER_ID, "are you there?")

    telegram.unblock(USER_ID)
    await bot.send_message(USER_ID, "welcome back")


async def test_unknown_chat_is_not_found(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(424242, "hello")


async def test_fail_next_429_raises_retry_after_once(telegram: FakeTelegram, bot: Bot) -> None:
    ann = telegram.user(USER_ID)
    telegram.fail_next("sendMessage", 429, retry_after=3)

    with pytest.raises(RetryAfter, match="Retry in 3 seconds"):
        await bot.send_message(USER_ID, "first try")
    await bot.send_message(USER_ID, "second try")

    assert ann.texts() == ["second try"]


async def test_fail_next_for_one_chat_spares_the_others(telegram: FakeTelegram, bot: Bot) -> None:
    telegram.user(1), telegram.user(2)
    telegram.fail_next("sendMessage", 500, "Internal Server Error", chat_id=2)

    await bot.send_message(1, "fine")
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(2, "fails")


async def test_fault_rate_fails_replies_but_not_polling(telegram: FakeTelegram, bot: Bot) -> None:
    telegram.user(USER_ID)
    telegram.fault_rate(1.0, statuses=(502,), seed=7)

    await bot.get_updates()
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(USER_ID, "lost")

    telegram.fault_rate(0)
    await bot.send_message(USER_ID, "delivered")


async def test_uploaded_photo_downloads_back_byte_for_byte(
    telegram: FakeTelegram, bot: Bot
) -> None:
    ann = telegram.user(USER_ID)
    picture = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8

    sent = await bot.send_photo(USER_ID, photo=picture, caption="a cat?")
    downloaded = await (await bot.get_file(sent.photo[-1].file_id)).download_as_bytearray()

    assert bytes(downloaded) == picture
    assert ann.last["caption"] == "a cat?"
    assert ann.last["photo"][-1]["file_unique_id"] == sent.photo[-1].file_unique_id
    resent = await bot.send_photo(USER_ID, photo=sent.photo[-1].file_id)
    assert resent.photo[-1].file_id == sent.photo[-1].file_id


async def test_media_kinds_carry_their_objects(telegram: FakeTelegram, bot: Bot) -> None:
    ann = telegram.user(USER_ID)

    audio = await bot.send_audio(USER_ID, audio=b"ID3 sound", filename="song.mp3", duration=7)
    video = await bot.send_video(USER_ID, video=b"\x00\x00 video", filename="clip.mp4")
    document = await bot.send_document(USER_ID, document=b"a,b\n1,2\n", filename="items.csv")
    by_url = await bot.send_photo(USER_ID, photo="https://example.org/cat.jpg")

    assert audio.audio is not None and ann.messages[0]["audio"]["duration"] == 7
    assert video.video is not None and video.video.file_name == "clip.mp4"
    assert document.document is not None and document.document.file_size == 8
    assert by_url.photo
    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await bot.send_document(USER_ID, document="no-such-file-id")


async def test_user_document_reaches_the_bot_which_downloads_it(
    telegram: FakeTelegram,
    polling_app: Application,
) -> None:
    ann = telegram.user(USER_ID)

    await ann.send_document(b'{"name": "x"}', "tasks.json", mime_type="application/json")

    reply = await ann.wait_for("got tasks.json")
    assert reply["text"] == 'got tasks.json: b\'{"name": "x"}\''


@asynccontextmanager
async def webhook_receiver(
    receive: Callable[[web.Request], Awaitable[web.Response]],
) -> AsyncIterator[str]:
    """A loopback HTTP server answering POSTs to the URL it yields with ``receive``."""
    receiver = web.Application()
    receiver.router.add_post("/hook", receive)
    runner = web.AppRunner(receiver)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


async def test_webhook_receives_updates_with_the_secret_header(
    telegram: FakeTelegram, bot: Bot
) -> None:
    received: asyncio.Queue[tuple[str | None, dict[str, object]]] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        await received.put(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        return web.Response()

    async with webhook_receiver(receive) as url:
        ann = telegram.user(USER_ID)
        await bot.set_webhook(url, secret_token="s3cret")

        update_id = await ann.send_text("via webhook")
        secret, update = await asyncio.wait_for(received.get(), 10)

        assert secret == "s3cret"
        assert update["update_id"] == update_id
        assert (await bot.get_webhook_info()).url == url
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates()
        await bot.delete_webhook()
        await ann.send_text("via polling")
        assert [u.message.text for u in await bot.get_updates() if u.message] == ["via polling"]


async def test_a_second_poller_terminates_the_first(telegram: FakeTelegram, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=30))
    await telegram.wait_long_poll()

    # A second bot instance with the same token, as when two processes run by mistake.
    async with Bot(TOKEN, base_url=telegram.base_url) as twin:
        assert await twin.get_updates(timeout=0) == ()

    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 10)


async def test_redelivered_update_reaches_the_bot_again(
    telegram: FakeTelegram,
    polling_app: Application,
) -> None:
    ann = telegram.user(USER_ID)
    update_id = await ann.send_text("once")
    await ann.wait_for("echo: once")
    await settled(polling_app, telegram)

    assert telegram.redeliver(update_id) == update_id
    await settled(polling_app, telegram)

    assert ann.texts() == ["echo: once", "echo: once"]


async def test_html_is_stored_as_text_and_entities(telegram: FakeTelegram, bot: Bot) -> None:
    ann = telegram.user(USER_ID)

    await bot.send_message(
        USER_ID, "<b>Gold</b> 🥇 <i>item</i> &amp; more", parse_mode=ParseMode.HTML
    )

    assert ann.last["text"] == "Gold 🥇 item & more"
    assert ann.last["entities"] == [
        {"type": "bold", "offset": 0, "length": 4},
        {"type": "italic", "offset": 8, "length": 4},  # the medal counts as two UTF-16 units
    ]
    with pytest.raises(BadRequest, match="Can't parse entities"):
        await bot.send_message(USER_ID, "<b>open", parse_mode=ParseMode.HTML)


async def test_callback_data_longer_than_64_bytes_is_rejected(
    telegram: FakeTelegram, bot: Bot
) -> None:
    telegram.user(USER_ID)
    keyboard = InlineKeyboardMarkup.from_button(InlineKeyboardButton("x", callback_data="x" * 65))

    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(USER_ID, "too long", reply_markup=keyboard)


async def test_force_reply_holds_the_input_field_until_a_send_or_a_delete(
    telegram: FakeTelegram, bot: Bot
) -> None:
    ann = telegram.user(USER_ID)
    asked = await bot.send_message(USER_ID, "Why?", reply_markup=ForceReply())
    await bot.send_message(USER_ID, "something else")  # the field stays on the question
    assert ann.reply_field is not None and ann.reply_field["message_id"] == asked.message_id
    assert "reply_markup" not in ann.reply_field  # Telegram echoes no ForceReply back

    await ann.send_text("because", reply_to=ann.reply_field)
    assert ann.reply_field is None
    asked = await bot.send_message(USER_ID, "Why now?", reply_markup=ForceReply())
    await bot.delete_message(USER_ID, asked.message_id)
    assert ann.reply_field is None
    with pytest.raises(BadRequest, match="placeholder"):
        await bot.send_message(
            USER_ID, "Why?", reply_markup=ForceReply(input_field_placeholder="x" * 65)
        )


async def test_commands_round_trip_and_bad_names_fail(bot: Bot) -> None:
    await bot.set_my_commands([("start", "Begin labeling"), ("me", "Your stats")])

    assert [(c.command, c.description) for c in await bot.get_my_commands()] == [
        ("start", "Begin labeling"),
        ("me", "Your stats"),
    ]
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([("Start!", "bad")])


async def test_delete_message_and_chat_action(telegram: FakeTelegram, bot: Bot) -> None:
    ann = telegram.user(USER_ID)
    sent = await bot.send_message(USER_ID, "soon gone")
    await bot.send_chat_action(USER_ID, "typing")

    await bot.delete_message(USER_ID, sent.message_id)

    assert ann.messages == []
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(USER_ID, sent.message_id)


async def test_unknown_method_and_wrong_token(telegram: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(EndPointNotFound, match="noSuchMethod"):
        await bot.do_api_request("noSuchMethod")
    with pytest.raises(InvalidToken, match="rejected by the server"):
        async with Bot("999:WRONG", base_url=telegram.base_url):
            pass


async def test_calls_record_decoded_params(telegram: FakeTelegram, bot: Bot) -> None:
    telegram.user(USER_ID)
    keyboard = InlineKeyboardMarkup.from_button(InlineKeyboardButton("Go", callback_data="go"))

    await bot.send_message(USER_ID, "123", reply_markup=keyboard)

    call = telegram.calls[-1]
    assert call.method == "sendMessage"
    assert call.params["chat_id"] == USER_ID
    assert call.params["text"] == "123"  # a text field stays a string even when it looks numeric
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]
    }


async def test_wait_idle_waits_until_the_bot_confirms_every_update(
    telegram: FakeTelegram, bot: Bot
) -> None:
    update_id = await telegram.user(USER_ID).send_text("hello")
    await bot.get_updates()  # fetched but not confirmed: the bot may not have it yet

    with pytest.raises(TimeoutError, match="1 updates pending"):
        await telegram.wait_idle(timeout=0.2)
    idle = asyncio.create_task(telegram.wait_idle())
    await bot.get_updates(offset=update_id + 1)
    await idle


async def test_wait_idle_with_quiet_also_waits_for_a_pause_in_requests(
    telegram: FakeTelegram, bot: Bot
) -> None:
    await bot.get_me()

    with pytest.raises(TimeoutError, match="0 updates pending, 0 requests in flight"):
        await telegram.wait_idle(timeout=0.2, quiet=10)
    await telegram.wait_idle(quiet=0.1)


async def test_wait_idle_waits_until_the_webhook_answers(telegram: FakeTelegram, bot: Bot) -> None:
    posted, answer = asyncio.Event(), asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        posted.set()
        await answer.wait()
        return web.Response()

    async with webhook_receiver(receive) as url:
        await bot.set_webhook(url)
        await telegram.user(USER_ID).send_text("hello")
        await asyncio.wait_for(posted.wait(), 10)

        idle = asyncio.create_task(telegram.wait_idle())
        done, _ = await asyncio.wait({idle}, timeout=0.2)
        answer.set()
        assert not done, "idle while the webhook has not answered"
        await idle


async def test_users_voice_photo_sticker_and_edit_reach_the_bot(
    telegram: FakeTelegram, transport: TransportKind
) -> None:
    """A voice note (downloadable by its file_id), a photo, a sticker and an edited text arrive
    as PTB parses them."""
    seen: list[str] = []

    async def describe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None
        if message.voice is not None:
            file = await context.bot.get_file(message.voice.file_id)
            content = bytes(await file.download_as_bytearray())
            seen.append(f"voice {message.voice.duration}s {message.voice.mime_type} {content!r}")
        elif message.photo:
            seen.append(f"photo {message.caption}")
        elif message.sticker is not None:
            seen.append(f"sticker {message.sticker.emoji}")
        elif update.edited_message is not None:
            assert message.edit_date is not None
            seen.append(f"edited {message.message_id} {message.text}")
        else:
            seen.append(f"text {message.message_id} {message.text}")

    application = build_application(telegram, transport)
    application.add_handler(MessageHandler(filters.ALL, describe), group=1)
    ann = telegram.user(USER_ID)
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0)
        await ann.send_voice(4, b"OggS 4 seconds")
        await ann.send_photo(b"\xff\xd8 jpeg", caption="look")
        await ann.send_sticker("🙂")
        await ann.send_text("helo")
        typo = ann.sent[-1]["message_id"]
        edit = await ann.edit_text(typo, "hello")
        telegram.redeliver(edit)
        await settled(application, telegram)  # type: ignore[arg-type]
        await application.updater.stop()
        await application.stop()

    assert seen == [
        "voice 4s audio/ogg b'OggS 4 seconds'",
        "photo look",
        "sticker 🙂",
        f"text {typo} helo",
        f"edited {typo} hello",
        f"edited {typo} hello",
    ]
    assert ann.sent[-1]["text"] == "hello" and "edit_date" in ann.sent[-1]
    with pytest.raises(LookupError):
        await ann.edit_text(ann.last["message_id"], "a bot message is not mine to edit")
