"""Messages as Telegram renders them: Message and CallbackQuery JSON, text entities (UTF-16
offsets, bot commands, HTML parse mode) and the inline keyboards a message keeps."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from typing import Any

from bot.fakegram.errors import bad_request
from bot.fakegram.wire import JSONDict

_BOT_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")
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


def message(message_id: int, sender: JSONDict, chat: JSONDict, content: JSONDict) -> JSONDict:
    """A Message sent now by ``sender`` in ``chat``, carrying ``content`` (text, media, ...)."""
    return {
        "message_id": message_id,
        "from": sender,
        "chat": chat,
        "date": int(time.time()),
        **content,
    }


def callback_query(
    query_id: str, sender: JSONDict, message: JSONDict, chat_instance: str, data: str
) -> JSONDict:
    """The CallbackQuery of a tap on a button of ``message``."""
    return {
        "id": query_id,
        "from": sender,
        "message": message,
        "chat_instance": chat_instance,
        "data": data,
    }


def utf16_len(text: str) -> int:
    """Entity offsets and lengths count UTF-16 code units, as in the Bot API."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[JSONDict]:
    """The bot_command entities Telegram marks in a user's text."""
    return [
        {
            "type": "bot_command",
            "offset": utf16_len(text[: match.start()]),
            "length": utf16_len(match.group()),
        }
        for match in _BOT_COMMAND.finditer(text)
    ]


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
            raise bad_request(f'can\'t parse entities: Unsupported start tag "{tag}"')
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
            raise bad_request(f'can\'t parse entities: Unmatched end tag "{tag}"')
        _, entity = self._open.pop()
        if entity and self._position > entity["offset"]:
            entity["length"] = self._position - entity["offset"]
            self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self._position += utf16_len(data)

    def parse(self, markup: str) -> tuple[str, list[JSONDict]]:
        self.feed(markup)
        self.close()
        if self._open:
            tag = self._open[-1][0]
            raise bad_request(
                f"can't parse entities: Can't find end tag corresponding to start tag \"{tag}\""
            )
        self.entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
        return "".join(self.parts), self.entities


def formatted(params: JSONDict, text_field: str, entities_field: str) -> JSONDict:
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


def inline_keyboard(markup: Any) -> JSONDict | None:
    """The reply_markup a message keeps: only inline keyboards are echoed back by Telegram."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return None
    for row in rows:
        for button in row:
            if not button.get("text"):
                raise bad_request("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise bad_request("BUTTON_DATA_INVALID")
            if len(button) < 2:
                raise bad_request("text buttons are unallowed in the inline keyboard")
    return {"inline_keyboard": rows}


def forces_reply(markup: Any) -> bool:
    """A ForceReply: the message is not changed (Telegram echoes no such markup back), but the
    phone's input field replies to it."""
    if not isinstance(markup, dict) or "force_reply" not in markup:
        return False
    placeholder = markup.get("input_field_placeholder")
    if markup["force_reply"] is not True or "inline_keyboard" in markup:
        raise bad_request("can't parse reply keyboard markup JSON object")
    if placeholder is not None and not 1 <= len(str(placeholder)) <= 64:
        raise bad_request("input field placeholder must be 1-64 characters")
    return True


def buttons(message: JSONDict) -> list[JSONDict]:
    markup = message.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def message_text(message: JSONDict) -> str:
    return str(message.get("text", message.get("caption", "")))
