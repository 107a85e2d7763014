"""PTB's ExtBot plus the answer loop's calls, sending Bot API JSON and not parsing the reply."""

from __future__ import annotations

from typing import Final, TypedDict

from telegram.ext import ExtBot


class Button(TypedDict):
    text: str
    callback_data: str


class InlineKeyboard(TypedDict):
    """A Bot API ``InlineKeyboardMarkup`` as the JSON Telegram receives."""

    inline_keyboard: list[list[Button]]


# Item media kind -> (Bot API method, its media field).
MEDIA_METHODS: Final = {
    "image": ("sendPhoto", "photo"),
    "audio": ("sendAudio", "audio"),
    "video": ("sendVideo", "video"),
}


class LabelingBot(ExtBot[int]):  # int: the retry count AIORateLimiter accepts per call
    """Every tap edits the answered item and sends the next one (a card layout edits it into
    the next one). PTB's own calls build the
    item's keyboard as objects and serialize them again, then build a whole ``Message`` from
    Telegram's reply: about a fifth of the bot's CPU per tap, for objects nobody reads. These
    calls take the keyboard as JSON and skip the reply, and nothing else: they go through
    ``ExtBot._post`` like every other call, so defaults, the rate limiter and Telegram's errors
    (``BadRequest``, ``Forbidden``, ``RetryAfter``) behave the same.
    """

    async def send_text(
        self, chat_id: int, text: str, reply_markup: InlineKeyboard | None = None
    ) -> int:
        """``sendMessage``; returns the sent message's id."""
        sent = await self._post(
            "sendMessage", {"chat_id": chat_id, "text": text, "reply_markup": reply_markup}
        )
        return int(sent["message_id"])

    async def send_media(
        self,
        chat_id: int,
        kind: str,
        media: str,
        caption: str | None = None,
        reply_markup: InlineKeyboard | None = None,
    ) -> int:
        """``sendPhoto``, ``sendAudio`` or ``sendVideo`` of a URL or file_id, by item kind;
        returns the sent message's id."""
        method, field = MEDIA_METHODS[kind]
        sent = await self._post(
            method,
            {"chat_id": chat_id, field: media, "caption": caption, "reply_markup": reply_markup},
        )
        return int(sent["message_id"])

    async def replace_text(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        reply_markup: InlineKeyboard | None = None,
    ) -> None:
        """``editMessageText``; without ``reply_markup`` it also drops the buttons."""
        await self._post(
            "editMessageText",
            {
                "chat_id": chat_id,
                "message_id": message_id,
                "text": text,
                "reply_markup": reply_markup,
            },
        )

    async def replace_media(
        self,
        chat_id: int,
        message_id: int,
        kind: str,
        media: str,
        caption: str,
        reply_markup: InlineKeyboard | None = None,
    ) -> None:
        """``editMessageMedia``: a photo, audio or video message becomes another, by item kind."""
        media_type = MEDIA_METHODS[kind][1]
        await self._post(
            "editMessageMedia",
            {
                "chat_id": chat_id,
                "message_id": message_id,
                "media": {"type": media_type, "media": media, "caption": caption},
                "reply_markup": reply_markup,
            },
        )
