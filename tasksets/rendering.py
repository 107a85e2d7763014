"""How an item reads in the chat, and Telegram's length limits, shared by the loader (which
refuses a set whose items Telegram would refuse) and the bot (which renders them)."""

from __future__ import annotations

# Telegram's limits, counted in UTF-16 code units: a message holds 4096, a media caption 1024.
MAX_TEXT = 4096
MAX_CAPTION = 1024


def telegram_length(text: str) -> int:
    """The length Telegram counts: UTF-16 code units (an emoji outside the BMP counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def item_body(number: int, text: str | None, question: str) -> str:
    """The item as a worker reads it: its number in their stream, its text, the question."""
    parts = [f"Item {number}"]
    if text:
        parts.append(text)
    parts.append(question)
    return "\n\n".join(parts)


def fits_caption(body: str) -> bool:
    return telegram_length(body) <= MAX_CAPTION


def fits_text(body: str) -> bool:
    return telegram_length(body) <= MAX_TEXT
