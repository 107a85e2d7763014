"""Typed and voice answers: what a set takes, and why a reply does not fit it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Voice:
    """A voice note as Telegram describes it; the file stays on Telegram's servers."""

    file_id: str
    seconds: int
    size: int | None


@dataclass(frozen=True, slots=True)
class Reply:
    """A worker's message: a text, a voice note, or neither (a sticker, a photo, ...)."""

    text: str | None = None
    voice: Voice | None = None


class ReplyProblem(StrEnum):
    WANTS_TEXT = "wants_text"  # a voice note, sticker or photo where a typed reply is asked for
    WANTS_VOICE = "wants_voice"
    WANTS_TEXT_OR_VOICE = "wants_text_or_voice"
    EMPTY = "empty"  # only spaces
    TOO_LONG = "too_long"  # more than max_length characters
    TOO_SHORT_VOICE = "too_short_voice"
    TOO_LONG_VOICE = "too_long_voice"


class ReplyRules(Protocol):
    """What a set takes: its answer type (tasksets.spec.AnswerType) and its limits."""

    @property
    def answer(self) -> str: ...
    @property
    def max_length(self) -> int: ...
    @property
    def min_seconds(self) -> float | None: ...
    @property
    def max_seconds(self) -> float | None: ...


def takes_text(rules: ReplyRules) -> bool:
    return rules.answer in ("text", "text_or_voice")


def takes_voice(rules: ReplyRules) -> bool:
    return rules.answer in ("voice", "text_or_voice")


def reply_problem(rules: ReplyRules, reply: Reply) -> ReplyProblem | None:
    """Why ``reply`` cannot be the answer in a set with these rules; None when it can."""
    if reply.text is not None and takes_text(rules):
        if not reply.text.strip():
            return ReplyProblem.EMPTY
        return ReplyProblem.TOO_LONG if len(reply.text.strip()) > rules.max_length else None
    if reply.voice is not None and takes_voice(rules):
        seconds = reply.voice.seconds
        if rules.min_seconds is not None and seconds < rules.min_seconds:
            return ReplyProblem.TOO_SHORT_VOICE
        if rules.max_seconds is not None and seconds > rules.max_seconds:
            return ReplyProblem.TOO_LONG_VOICE
        return None
    if takes_text(rules) and takes_voice(rules):
        return ReplyProblem.WANTS_TEXT_OR_VOICE
    return ReplyProblem.WANTS_TEXT if takes_text(rules) else ReplyProblem.WANTS_VOICE
