"""The one callback-data codec. Each action has a prefix; handlers match it with ``PATTERN``s.

Callback data never carries a gold label or an item id: an answer button names the lease by its
opaque token and the choice by its index, ``a:<token>:<choice>`` (Telegram allows 64 bytes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from storage.labeling import Choice
from tasksets.standing import Period

MAX_BYTES = 64
ANSWER_PATTERN = re.compile(r"^a:([A-Za-z0-9_-]{8,32}):(\d{1,2}|s|u)$")
DISPUTE_PATTERN = re.compile(r"^d:(\d{1,18})$")
JOIN_PATTERN = re.compile(r"^j:(\d{1,18})$")
# A review's verdict, ``r:<token>:<y|n|label index>``: correct, wrong, or wrong with the right
# label; and its ❌ on a labeled (or "Not sure") answer, ``rx:<token>:<given label index|->``,
# which asks for the right label before anything is recorded.
REVIEW_PATTERN = re.compile(r"^r:([A-Za-z0-9_-]{8,32}):(y|n|\d{1,2})$")
REVIEW_WRONG_PATTERN = re.compile(r"^rx:([A-Za-z0-9_-]{8,32}):(\d{1,2}|-)$")
# Undo an answer: its id and the token of the lease it answered (a new token once undone); in
# a chat, also the message of the item sent after it, which an undo puts back (``c``: its text
# is a media caption).
UNDO_PATTERN = re.compile(r"^u:(\d{1,18}):([A-Za-z0-9_-]{8,32})(?::(\d{1,18})(c?))?$")
# "Skip reason" under a "not sure" answer: the prompt message it takes away.
NO_REASON_PATTERN = re.compile(r"^nr:(\d{1,18})$")

_CHOICE_CODES: dict[str, Literal["skip", "unsure"]] = {"s": "skip", "u": "unsure"}


@dataclass(frozen=True, slots=True)
class AnswerData:
    token: str
    choice: Choice


def encode_answer(token: str, choice: Choice) -> str:
    code = {"skip": "s", "unsure": "u"}[choice] if isinstance(choice, str) else str(choice)
    data = f"a:{token}:{code}"
    if len(data.encode()) > MAX_BYTES or not ANSWER_PATTERN.match(data):
        raise ValueError(f"cannot encode answer callback {data!r}")
    return data


def decode_answer(data: str) -> AnswerData | None:
    """The answer a button names, or None for anything malformed (a forged button)."""
    match = ANSWER_PATTERN.match(data)
    if match is None:
        return None
    token, code = match.groups()
    return AnswerData(token, _CHOICE_CODES[code] if code in _CHOICE_CODES else int(code))


@dataclass(frozen=True, slots=True)
class VerdictData:
    token: str
    correct: bool
    corrected: int | None  # the right label's index, after ❌ on a label


def encode_verdict(token: str, correct: bool, corrected: int | None = None) -> str:
    code = "y" if correct else ("n" if corrected is None else str(corrected))
    return encode_parts("r", token, code)


def decode_verdict(data: str) -> VerdictData | None:
    parts = decode_parts(REVIEW_PATTERN, data)
    if parts is None:
        return None
    token, code = parts
    if code in ("y", "n"):
        return VerdictData(token, code == "y", None)
    return VerdictData(token, False, int(code))


@dataclass(frozen=True, slots=True)
class WrongData:
    token: str
    # The index of the label under review, left out of the choice of the right one (None for
    # a "Not sure" answer: every label is offered).
    given: int | None


def encode_wrong(token: str, given: int | None) -> str:
    return encode_parts("rx", token, "-" if given is None else given)


def decode_wrong(data: str) -> WrongData | None:
    parts = decode_parts(REVIEW_WRONG_PATTERN, data)
    if parts is None:
        return None
    return WrongData(parts[0], None if parts[1] == "-" else int(parts[1]))


def encode_dispute(answer_id: int) -> str:
    return f"d:{answer_id}"


def decode_dispute(data: str) -> int | None:
    match = DISPUTE_PATTERN.match(data)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class ItemMessage:
    """The message that carries an item's buttons: its id, and whether its text is a caption."""

    message_id: int
    captioned: bool = False


@dataclass(frozen=True, slots=True)
class UndoData:
    answer_id: int
    token: str
    next_message: ItemMessage | None = None  # the item sent after the answer, in a chat


def encode_undo(answer_id: int, token: str, next_message: ItemMessage | None = None) -> str:
    if next_message is None:
        return encode_parts("u", answer_id, token)
    kind = "c" if next_message.captioned else ""
    return encode_parts("u", answer_id, token, f"{next_message.message_id}{kind}")


def decode_undo(data: str) -> UndoData | None:
    match = UNDO_PATTERN.match(data)
    if match is None:
        return None
    following = match.group(3)
    next_message = ItemMessage(int(following), match.group(4) == "c") if following else None
    return UndoData(int(match.group(1)), match.group(2), next_message)


def encode_no_reason(prompt_message_id: int) -> str:
    return f"nr:{prompt_message_id}"


def decode_no_reason(data: str) -> int | None:
    match = NO_REASON_PATTERN.match(data)
    return int(match.group(1)) if match else None


def encode_join(taskset_id: int) -> str:
    return f"j:{taskset_id}"


def decode_join(data: str) -> int | None:
    match = JOIN_PATTERN.match(data)
    return int(match.group(1)) if match else None


# ------------------------------------------------------------------------------ coordinators
# Buttons of the coordinator's chat (handlers/coordinator.py) and the workers' /settings. Each
# carries only ids (task set, worker, dispute) and one-letter codes; never a gold label.
_ID = r"(\d{1,18})"
PREVIEW_PATTERN = re.compile(r"^cv$")  # the label buttons of an upload's item preview
DRAFT_PATTERN = re.compile(rf"^c([px]):{_ID}$")  # publish / cancel a draft
STATUS_PATTERN = re.compile(rf"^ct:([prc]):{_ID}$")  # pause / resume / close
EXPORT_PATTERN = re.compile(rf"^ce:{_ID}(?::([cj]):([mwdr]))?$")  # menu, or format and method
STATS_PATTERN = re.compile(rf"^cs:{_ID}$")
WORKERS_PATTERN = re.compile(rf"^cw:{_ID}$")
SUSPEND_PATTERN = re.compile(rf"^cu:{_ID}:{_ID}(?::([a-z]))?$")  # reasons menu, or a reason
REINSTATE_PATTERN = re.compile(rf"^ci:{_ID}:{_ID}$")
DISPUTES_PATTERN = re.compile(rf"^cd:{_ID}$")  # the next open dispute of a set
DECIDE_PATTERN = re.compile(rf"^c([yn]):{_ID}$")  # accept / reject a dispute
UNSURE_PATTERN = re.compile(rf"^cq:{_ID}$")
NOTIFY_PATTERN = re.compile(r"^sn:([01])$")  # /settings: new-task messages off / on


def encode_parts(prefix: str, *parts: object) -> str:
    """``prefix:part:part``; raises ValueError past Telegram's 64 bytes."""
    data = ":".join([prefix, *(str(part) for part in parts)])
    if len(data.encode()) > MAX_BYTES:
        raise ValueError(f"callback data too long: {data!r}")
    return data


def decode_parts(pattern: re.Pattern[str], data: str) -> tuple[str, ...] | None:
    """The groups of ``pattern`` in ``data`` (an absent optional group is ""), or None for
    anything malformed."""
    match = pattern.match(data)
    return tuple(group or "" for group in match.groups()) if match else None


# ------------------------------------------------------------------- money and standing
# /leaderboard's period and scope buttons, /me's chart, /settings' name on the boards, and
# /delete's confirmation (the moment it was asked, so an old button cannot erase anything).
BOARD_PATTERN = re.compile(r"^lb:(\d{1,18}):([dwa])$")  # scope (a set's id, 0 all), period
CHART_PATTERN = re.compile(r"^mc$")
SHOW_NAME_PATTERN = re.compile(r"^sp:([01])$")  # pseudonym / first name on the boards
ERASE_PATTERN = re.compile(r"^del:(\d{1,12}|no)$")  # confirm (asked at, unix time) / keep


@dataclass(frozen=True, slots=True)
class BoardData:
    scope: int
    period: Period


def encode_board(scope: int, period: Period) -> str:
    return encode_parts("lb", scope, period.value)


def decode_board(data: str) -> BoardData | None:
    match = BOARD_PATTERN.match(data)
    return BoardData(int(match.group(1)), Period(match.group(2))) if match else None


def encode_erase(asked_at: int | None) -> str:
    """The confirm button (with the unix time /delete was sent) or, for None, the keep one."""
    return encode_parts("del", "no" if asked_at is None else asked_at)


def decode_erase(data: str) -> int | Literal["no"] | None:
    """The unix time of the request, "no" for the keep button, None for forged data."""
    match = ERASE_PATTERN.match(data)
    if match is None:
        return None
    return "no" if match.group(1) == "no" else int(match.group(1))
