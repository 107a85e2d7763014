"""The task set schema: labels, items, overlap, reward. Validation here is the single source of
what a loadable task set is; the parsers only turn files into the raw shape these models take."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence
from decimal import Decimal
from hashlib import blake2b
from typing import Literal, NamedTuple, Protocol, Self
from urllib.parse import urlsplit

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from tasksets import money
from tasksets.bonus import BonusRule
from tasksets.qualification import Qualification
from tasksets.quality import QualityRules
from tasksets.rendering import MAX_CAPTION, MAX_TEXT, item_body, telegram_length
from tasksets.review import ReviewRule

MediaKind = Literal["image", "audio", "video"]
# What a worker answers with: a tap on one of the labels, a typed reply, a voice note, or either.
AnswerType = Literal["labels", "text", "voice", "text_or_voice"]
ANSWER_TYPES: tuple[AnswerType, ...] = ("labels", "text", "voice", "text_or_voice")
# How a text set's answers become one per item: normalised exact-match vote, or ROVER's word
# alignment for transcriptions.
TextAggregate = Literal["vote", "rover"]
MAX_ANSWER_LENGTH = 4096  # a Telegram message
MEDIA_KINDS: tuple[MediaKind, ...] = ("image", "audio", "video")
# A set's items are read and stored a chunk at a time, so the limit is not memory's.
MAX_ITEMS = 10_000_000
# Error type of a repeated item id; its context names the index of the first use, which the
# parsers turn into a line number.
DUPLICATE_ID = "duplicate_item_id"

_NAME = re.compile(r"[a-z0-9_-]{1,64}")
_MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _without_nul(value: str) -> str:
    # PostgreSQL cannot store U+0000 in text, and no Telegram message shows it.
    if "\x00" in value:
        raise ValueError("contains a NUL character (U+0000), which cannot be stored")
    return value


class Label(BaseModel):
    """One answer option: `value` is stored and exported, `text` is shown on the button."""

    model_config = ConfigDict(**_MODEL_CONFIG, coerce_numbers_to_str=True)

    value: str = Field(min_length=1, max_length=32)
    text: str = Field(min_length=1, max_length=64)

    _stored_as_text = field_validator("value", "text")(_without_nul)

    @model_validator(mode="before")
    @classmethod
    def _from_plain_value(cls, data: object) -> object:
        # "pos" (or a number on a rating scale) is both the value and the button text.
        if isinstance(data, str | int) and not isinstance(data, bool):
            return {"value": data, "text": data}
        if isinstance(data, dict) and "text" not in data:
            return {**data, "text": data.get("value")}
        return data


class Item(BaseModel):
    """One thing to label: text and/or one media reference (URL or Telegram file_id)."""

    model_config = ConfigDict(**_MODEL_CONFIG, coerce_numbers_to_str=True)

    id: str = Field(min_length=1, max_length=128)
    text: str | None = None
    image: str | None = None
    audio: str | None = None
    video: str | None = None
    gold: str | None = None
    explanation: str | None = None

    _id_stored_as_text = field_validator("id")(_without_nul)

    @field_validator("text", "image", "audio", "video", "gold", "explanation")
    @classmethod
    def _blank_is_absent(cls, value: str | None) -> str | None:
        # An empty CSV cell or "" in JSON means the field is not given.
        return _without_nul(value) if value else None

    @field_validator("image", "audio", "video")
    @classmethod
    def _public_media(cls, value: str | None) -> str | None:
        return value if value is None else checked_media_reference(value)

    @model_validator(mode="after")
    def _has_content(self) -> Self:
        # Run for every item of a set: the common text-only item takes the short way.
        no_media = self.image is None and self.audio is None and self.video is None
        media = [] if no_media else [kind for kind in MEDIA_KINDS if getattr(self, kind)]
        if len(media) > 1:
            raise ValueError(f"has {' and '.join(media)}: an item takes at most one media field")
        if not media and self.text is None:
            raise ValueError("needs text or a media field (image, audio or video)")
        limit = MAX_CAPTION if media else MAX_TEXT
        # telegram_length(text) <= 2 * len(text): only a long text needs measuring.
        if (
            self.text is not None
            and 2 * len(self.text) > limit
            and telegram_length(self.text) > limit
        ):
            where = "as a media caption" if media else "in a message"
            raise _errors(
                self,
                _located(
                    ("text",),
                    self.text,
                    "text_too_long",
                    "has {length} characters; Telegram shows at most {limit} " + where,
                    length=telegram_length(self.text),
                    limit=limit,
                ),
            )
        return self

    @property
    def media(self) -> tuple[MediaKind, str] | None:
        """The media field that is set, as (kind, URL or file_id), or None for a text item."""
        if self.image is None and self.audio is None and self.video is None:
            return None
        for kind in MEDIA_KINDS:
            reference: str | None = getattr(self, kind)
            if reference is not None:
                return kind, reference
        return None


# A Telegram file_id: URL-safe base64 and nothing else.
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")
MAX_URL = 2048
# Names that only resolve inside a network (RFC 6761, RFC 8375 and common practice).
_LOCAL_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".lan", ".home.arpa")


def checked_media_reference(value: str) -> str:
    """A media field as given when it is a Telegram file_id or an http(s) URL of a public
    host; ValueError otherwise (file://, other schemes, localhost, private or reserved IP
    addresses, one-label or numeric host names such as ``http://2130706433/``). Host names
    are not resolved: this module does no I/O."""
    if _FILE_ID.fullmatch(value):
        return value
    refused = f"{value[:100]!r} is not a Telegram file_id or an http(s) URL of a public host"
    if len(value) > MAX_URL or any(char.isspace() or char == "\\" for char in value):
        raise ValueError(refused)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise ValueError(refused) from None
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme.lower() not in ("http", "https") or not host or "@" in parts.netloc:
        raise ValueError(refused)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        labels = host.split(".")
        local = host == "localhost" or host.endswith(_LOCAL_SUFFIXES)
        if local or len(labels) < 2 or not labels[-1].isalpha():
            raise ValueError(refused) from None
    else:
        if not address.is_global:
            raise ValueError(refused)
    return value


class Overlap(BaseModel):
    """How many workers label each item: `min`, raised up to `max` while the answers agree
    less than `confidence`. A plain number k means exactly k."""

    model_config = _MODEL_CONFIG

    min: int = Field(ge=1, le=100)
    max: int = Field(ge=1, le=100)
    confidence: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _from_count(cls, data: object) -> object:
        if isinstance(data, int) and not isinstance(data, bool):
            return {"min": data, "max": data}
        return data

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class TaskSetHeader(BaseModel):
    """Everything a task set file says besides its items, validated before any item is read:
    a file is loaded item by item (`tasksets.parsing.TaskSetStream`)."""

    model_config = _MODEL_CONFIG

    name: str
    title: str = Field(default="", max_length=256)  # the name when not given
    instructions: str = Field(default="", max_length=MAX_TEXT)
    question: str = Field(default="Choose a label", min_length=1)
    # Before `labels`, whose validator reads it: only a "labels" set has labels.
    answer: AnswerType = "labels"
    labels: list[Label]
    overlap: Overlap = Overlap(min=3, max=3)
    # currency comes before reward: the reward validator reads it to check the decimals.
    currency: str = "USD"
    reward: Decimal = Field(default=Decimal(0), ge=0)
    gold_ratio: float = Field(default=0.1, ge=0, le=1)
    qualification: Qualification | None = None
    # Auto-suspension thresholds; the defaults suit most sets.
    quality: QualityRules = QualityRules()
    # Hours a reward stays pending before it can be paid out (a suspension reverses it).
    hold_hours: int = Field(default=0, ge=0, le=24 * 366)
    # The accuracy bonus paid once per worker when the set closes; none by default.
    bonus: BonusRule | None = None
    # "chat": each item is a new message; "card": the answered message is edited into the next.
    layout: Literal["chat", "card"] = "chat"
    # Typed answers: at most this many characters. Voice answers: a note of this many seconds.
    max_length: int = Field(default=1000, ge=1, le=MAX_ANSWER_LENGTH)
    min_seconds: float | None = Field(default=None, ge=0, le=3600)
    max_seconds: float | None = Field(default=None, gt=0, le=3600)
    # A typed answer to a gold item is right when its normalised text matches or its word error
    # rate against the gold text is at most this.
    gold_max_wer: float = Field(default=0.1, ge=0, le=1)
    aggregate: TextAggregate = "vote"
    # The review stream: which answers reviewers check, what a review pays, who reviews.
    review: ReviewRule | None = None

    @model_validator(mode="before")
    @classmethod
    def _title_defaults_to_name(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("title") and isinstance(data.get("name"), str):
            return {**data, "title": data["name"]}
        return data

    @model_validator(mode="before")
    @classmethod
    def _typed_answers_take_no_labels(cls, data: object) -> object:
        # `labels` is required of a labels set only; the others get none (and refuse any).
        if isinstance(data, dict) and data.get("answer", "labels") != "labels":
            return {"labels": [], **data}
        return data

    _stored_as_text = field_validator("title", "instructions", "question")(_without_nul)

    @field_validator("name")
    @classmethod
    def _name_is_a_slug(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid name: use 1-64 characters of a-z 0-9 _ -")
        return value

    @field_validator("labels")
    @classmethod
    def _labels_fit_the_answer(cls, labels: list[Label], info: ValidationInfo) -> list[Label]:
        answer = info.data.get("answer")
        if answer is None:  # the answer type itself is invalid, and its error says so
            return labels
        if answer != "labels" and labels:
            raise ValueError(f'a set answered with "{answer}" takes no labels')
        if answer == "labels" and len(labels) < 2:
            raise PydanticCustomError(
                "too_short",
                "needs at least {min_length} entries, got {actual_length}",
                {"min_length": 2, "actual_length": len(labels)},
            )
        return labels

    @field_validator("labels")
    @classmethod
    def _labels_distinct(cls, labels: list[Label]) -> list[Label]:
        for attribute in ("value", "text"):
            seen: set[str] = set()
            for label in labels:
                shown = getattr(label, attribute)
                if shown in seen:
                    raise ValueError(f"two labels have the {attribute} {shown!r}")
                seen.add(shown)
        return labels

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        code = value.upper()
        money.minor_units(code)  # raises ValueError for a malformed code
        return code

    @field_validator("reward", mode="before")
    @classmethod
    def _reward_is_exact(cls, value: object, info: ValidationInfo) -> object:
        money.refuse_float(value, 'write the reward as a decimal string such as "0.02"')
        if isinstance(value, int):
            value = Decimal(value)
        currency = info.data.get("currency")  # absent when the currency itself is invalid
        if isinstance(value, str | Decimal) and currency is not None:
            money.to_minor(value, currency)  # raises ValueError: negative, too many decimals
        return value

    @model_validator(mode="after")
    def _answer_options_fit_the_answer(self) -> Self:
        # Each option belongs to one kind of answer: given for another, it is a mistake.
        owners: dict[str, tuple[AnswerType, ...]] = {
            "max_length": ("text", "text_or_voice"),
            "gold_max_wer": ("text", "text_or_voice"),
            "aggregate": ("text", "text_or_voice"),
            "min_seconds": ("voice", "text_or_voice"),
            "max_seconds": ("voice", "text_or_voice"),
        }
        errors = [
            _located(
                (key,),
                getattr(self, key),
                "option_for_other_answers",
                'applies to sets answered with {kinds}, not "{answer}"',
                kinds=" or ".join(f'"{kind}"' for kind in kinds),
                answer=self.answer,
            )
            for key, kinds in owners.items()
            if key in self.model_fields_set and self.answer not in kinds
        ]
        if (
            self.min_seconds is not None
            and self.max_seconds is not None
            and self.min_seconds > self.max_seconds
        ):
            errors.append(
                _located(
                    ("min_seconds",),
                    self.min_seconds,
                    "seconds_out_of_order",
                    "{low} is more than max_seconds {high}",
                    low=self.min_seconds,
                    high=self.max_seconds,
                )
            )
        if self.review is not None:
            try:
                money.to_minor(self.review.reward, self.currency)
            except ValueError as error:
                errors.append(
                    _located(
                        ("review", "reward"),
                        str(self.review.reward),
                        "reward",
                        "{reason}",
                        reason=str(error),
                    )
                )
        if errors:
            raise _errors(self, *errors)
        return self

    def _gold_problem(self, gold: str, labels: str) -> tuple[str, str] | None:
        """Why an item's gold answer cannot be checked against a worker's, as an error kind
        and its message template (over gold, labels, max_length), or None."""
        match self.answer:
            case "labels" if gold not in self.label_values:
                return "unknown_gold", "'{gold}' is not one of the labels {labels}"
            case "text" if telegram_length(gold) > self.max_length:
                return "gold_too_long", "is longer than max_length {max_length}"
            case "voice" | "text_or_voice":
                return "gold_for_voice", "a voice answer cannot be checked against a gold text"
        return None

    @property
    def label_values(self) -> list[str]:
        return [label.value for label in self.labels]

    @property
    def reward_minor(self) -> int:
        """The reward per answer in integer minor units of `currency` ("0.02" USD -> 2)."""
        return money.to_minor(self.reward, self.currency)


class TaskSetSpec(TaskSetHeader):
    """A validated task set with all its items in memory (chat uploads, tests, the demo)."""

    items: list[Item] = Field(min_length=1, max_length=MAX_ITEMS)

    @property
    def header(self) -> TaskSetHeader:
        return self

    def item_chunks(self) -> Iterator[Sequence[Item]]:
        """The items as `storage` loads them, like `tasksets.parsing.TaskSetStream`'s."""
        yield self.items

    @model_validator(mode="after")
    def _items_agree(self) -> Self:
        checks = ItemChecks(self)
        found = checks.check(self.items, range(len(self.items))) + checks.finish(len(self.items))
        errors = [cross_item.error for cross_item in found]
        if errors:
            raise _errors(self, *errors)
        return self


class LoadableTaskSet(Protocol):
    """What storage loads: a validated header, then the items a chunk at a time (a
    `TaskSetSpec` in memory, or a `tasksets.parsing.TaskSetStream` reading its file)."""

    @property
    def header(self) -> TaskSetHeader: ...

    def item_chunks(self) -> Iterator[Sequence[Item]]: ...


class CrossItemError(NamedTuple):
    """An error an item has only in the company of the set's other items."""

    line: int | None  # where the item is in its file, when the reader knows
    item: str | None  # its id; None for an error of the set as a whole
    error: InitErrorDetails  # located in the task set: ("items", 5, "gold")


class ItemChecks:
    """The checks that need more than one item, run a chunk of items at a time so that a set is
    validated as it is read: a repeated id, a gold answer the set cannot check, a message too
    long once the item number and the question are added, enough gold for the qualification.
    `header` None (the file's header is invalid) checks only the ids."""

    def __init__(self, header: TaskSetHeader | None) -> None:
        self.header = header
        self.gold_items = 0
        self._seen = SeenIds()
        self._labels = ", ".join(header.label_values) if header is not None else ""
        # Gold answers known good without asking the header (a labels set's label values).
        self._valid_gold = frozenset(header.label_values) if header is not None else frozenset()
        # How long an item's message is ("Item 12345", its text, the question) depends on the
        # last item number, known only at the end. Only texts close to the limit can go over
        # it, so those items are kept (a few per megabyte of file at most) and measured then.
        self._longest_prefix = (
            telegram_length(item_body(MAX_ITEMS, "", header.question)) + 2
            if header is not None
            else 0
        )
        self._near_limit: list[tuple[int, int | None, Item]] = []

    def check(
        self, items: Sequence[Item], indexes: Sequence[int], lines: Sequence[int] | None = None
    ) -> list[CrossItemError]:
        """Check items[k], the set's entry number indexes[k] (on lines[k] of its file, if the
        reader knows), after every item before it."""
        found: list[CrossItemError] = []

        def line_at(offset: int) -> int | None:
            return lines[offset] if lines is not None else None

        repeated = self._seen.add([item.id for item in items], indexes, lines)
        for offset, (first_index, first_line) in sorted(repeated.items()):
            item, index = items[offset], indexes[offset]
            template = (
                "duplicate id, also on line {first_line}"
                if lines is not None
                else "duplicate id: items[{first_index}] and items[{index}]"
            )
            error = _located(
                ("items", index, "id"),
                item.id,
                DUPLICATE_ID,
                template,
                first_index=first_index,
                first_line=first_line,
                index=index,
            )
            found.append(CrossItemError(line_at(offset), item.id, error))
        if self.header is None:
            return found
        # telegram_length(text) <= 2 * len(text): most texts are short enough to skip.
        measured_from = (MAX_TEXT - self._longest_prefix) // 2
        for offset, item in enumerate(items):
            text, gold = item.text, item.gold
            if text is not None and len(text) > measured_from:
                longest = item_body(MAX_ITEMS, text, self.header.question)
                if telegram_length(longest) > MAX_TEXT:
                    self._near_limit.append((indexes[offset], line_at(offset), item))
            if gold is not None:
                self.gold_items += 1
                if gold not in self._valid_gold:
                    found += self._gold_error(item, indexes[offset], line_at(offset))
        return found

    def _gold_error(self, item: Item, index: int, line: int | None) -> list[CrossItemError]:
        assert self.header is not None and item.gold is not None
        problem = self.header._gold_problem(item.gold, self._labels)
        if problem is None:
            return []
        kind, template = problem
        error = _located(
            ("items", index, "gold"),
            item.gold,
            kind,
            template,
            gold=item.gold,
            labels=self._labels,
            max_length=self.header.max_length,
        )
        return [CrossItemError(line, item.id, error)]

    def finish(self, count: int) -> list[CrossItemError]:
        """The checks that need every item, once all `count` of them went through `check`."""
        if self.header is None:
            return []
        found: list[CrossItemError] = []
        # The highest item number a worker can see: each item reaches a worker at most once.
        for index, line, item in self._near_limit:
            rendered = telegram_length(item_body(count, item.text, self.header.question))
            if rendered > MAX_TEXT:
                error = _located(
                    ("items", index, "text"),
                    item.text,
                    "message_too_long",
                    "with its item number and the question the message has {length} "
                    "characters; Telegram sends at most {limit}",
                    length=rendered,
                    limit=MAX_TEXT,
                )
                found.append(CrossItemError(line, item.id, error))
        qualification = self.header.qualification
        if qualification is not None and qualification.items > self.gold_items:
            error = _located(
                ("qualification", "items"),
                qualification.items,
                "not_enough_gold",
                "asks for {wanted} gold items but the set has {gold_items}",
                wanted=qualification.items,
                gold_items=self.gold_items,
            )
            found.append(CrossItemError(None, None, error))
        return found


class SeenIds:
    """The item ids seen so far, each as a 16-byte BLAKE2 digest with the index and line of its
    first use: 24 bytes an item, where a dict of the ids themselves takes about 150."""

    _DIGEST = np.dtype("S16")

    def __init__(self) -> None:
        # Sorted runs of (digest, first index, first line), merged like the digits of a binary
        # counter so that each digest is copied O(log n) times in all.
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(
        self, ids: Sequence[str], indexes: Sequence[int], lines: Sequence[int] | None
    ) -> dict[int, tuple[int, int]]:
        """Record ids[k] as entry indexes[k] on lines[k]; returns {k: (first index, first
        line)} for each id seen before (in an earlier call or earlier in `ids`)."""
        repeated: dict[int, tuple[int, int]] = {}
        first_in_chunk: dict[str, int] = {}
        again_in_chunk: dict[int, int] = {}  # offset -> offset of the id's first use here
        for offset, item_id in enumerate(ids):
            first = first_in_chunk.setdefault(item_id, offset)
            if first != offset:
                again_in_chunk[offset] = first
        fresh = list(first_in_chunk.values())
        digests = np.array(
            [blake2b(ids[offset].encode(), digest_size=16).digest() for offset in fresh],
            dtype=self._DIGEST,
        )
        known = np.zeros(len(fresh), dtype=bool)
        for run_digests, run_indexes, run_lines in self._runs:
            at = np.searchsorted(run_digests, digests).clip(max=len(run_digests) - 1)
            for position in np.flatnonzero(run_digests[at] == digests):
                known[position] = True
                repeated[fresh[position]] = (
                    int(run_indexes[at[position]]),
                    int(run_lines[at[position]]),
                )
        for offset, first in again_in_chunk.items():
            # The first use is the chunk's own, unless that one repeats an earlier chunk's.
            repeated[offset] = repeated.get(
                first, (indexes[first], lines[first] if lines is not None else 0)
            )
        # Each digest is kept once, with its first use: a repeat adds nothing to look up.
        new = [offset for offset, seen in zip(fresh, known, strict=True) if not seen]
        self._push(
            digests[~known],
            np.array([indexes[offset] for offset in new], dtype=np.uint32),
            np.array(
                [lines[offset] for offset in new] if lines is not None else [0] * len(new),
                dtype=np.uint32,
            ),
        )
        return repeated

    def _push(self, digests: np.ndarray, indexes: np.ndarray, lines: np.ndarray) -> None:
        order = np.argsort(digests, kind="stable")
        run = (digests[order], indexes[order], lines[order])
        while self._runs and len(self._runs[-1][0]) <= len(run[0]):
            previous = self._runs.pop()
            # Insert the newer run into the older one, after equal digests so that a search
            # finds the first use: a new array per column, no sort of the merged run.
            at = np.searchsorted(previous[0], run[0], side="right")
            run = (
                np.insert(previous[0], at, run[0]),
                np.insert(previous[1], at, run[1]),
                np.insert(previous[2], at, run[2]),
            )
        self._runs.append(run)


def _located(
    loc: tuple[str | int, ...], value: object, kind: str, template: str, **context: object
) -> InitErrorDetails:
    """An error at `loc` (relative to the model raising it); `template` formats `context`."""
    return InitErrorDetails(type=PydanticCustomError(kind, template, context), loc=loc, input=value)


def _errors(model: BaseModel, *errors: InitErrorDetails) -> ValidationError:
    # A ValidationError raised in a validator keeps each error's own location, nested under
    # the location of the model being validated: ("items", 5, "gold") from the task set.
    return ValidationError.from_exception_data(type(model).__name__, list(errors))
