"""PTB's ExtBot plus the answer loop's two calls, without parsing Telegram's reply."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup
from telegram.ext import ExtBot


class LabelingBot(ExtBot[int]):  # int: the retry count AIORateLimiter accepts per call
    """Every tap edits the answered item and sends the next one. For each, PTB builds a whole
    ``Message`` (user, chat, keyboard, ...) from Telegram's reply: about a sixth of the bot's
    CPU per tap, for objects the answer loop never reads. These variants skip that and nothing
    else: they go through ``ExtBot._post`` like every other call, so defaults, the rate limiter
    and Telegram's errors (``BadRequest``, ``Forbidden``, ``RetryAfter``) behave the same.
    """

    async def send_text(
        self, chat_id: int, text: str, reply_markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """``send_message`` that does not build the sent Message."""
        await self._post(
            "sendMessage", {"chat_id": chat_id, "text": text, "reply_markup": reply_markup}
        )

    async def replace_text(self, chat_id: int, message_id: int, text: str) -> None:
        """``edit_message_text`` that drops the buttons and does not build the edited Message."""
        await self._post(
            "editMessageText", {"chat_id": chat_id, "message_id": message_id, "text": text}
        )
