"""Read task set files (JSON, JSONL, CSV) into a validated `TaskSetSpec`.

Every problem found is reported, not only the first, each naming where it is: the line (JSON
syntax errors; every JSONL and CSV item), the item id and the field. Arbitrary bytes either
parse or raise `TaskSetError`; nothing else escapes.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from tasksets.spec import DUPLICATE_ID, MAX_ITEMS, TaskSetSpec

Format = Literal["json", "jsonl", "csv"]
_FORMAT_OF_SUFFIX: dict[str, Format] = {".json": "json", ".jsonl": "jsonl", ".csv": "csv"}
CSV_COLUMNS = ("id", "text", "image", "audio", "video", "gold", "explanation")
# A header wider than this is refused before its columns are checked one by one.
MAX_CSV_COLUMNS = 64
# Numbers beyond this power of ten are refused before pydantic turns them into huge integers.
_MAX_NUMBER_EXPONENT = 1000


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a task set file, and where."""

    line: int | None
    item: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        place = [
            f"line {self.line}" if self.line is not None else "",
            f"item {self.item!r}" if self.item is not None else "",
            f"field {self.field!r}" if self.field is not None else "",
        ]
        where = " ".join(part for part in place if part)
        return f"{where}: {self.message}" if where else self.message


class TaskSetError(ValueError):
    """A task set file that cannot be loaded; `problems` lists everything wrong with it."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


@dataclass(frozen=True)
class SpecOverrides:
    """Spec values given outside the file (CLI flags, upload caption); they win over the file's.
    A CSV file holds only items, so for CSV these are the whole spec."""

    name: str | None = None
    labels: list[str] | None = None
    overlap: int | None = None
    reward: str | None = None
    answer: str | None = None  # "text", "voice", ...: a CSV set answered otherwise than by labels


def parse_taskset(path: Path, overrides: SpecOverrides = SpecOverrides()) -> TaskSetSpec:
    """Read and validate the task set file at `path`; the format comes from its extension."""
    fmt = _FORMAT_OF_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise TaskSetError(
            [_problem(f"unsupported file type {path.suffix!r}: use .json, .jsonl or .csv")]
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TaskSetError([_problem(f"cannot read {path}: {exc.strerror}")]) from None
    return parse_taskset_bytes(data, fmt, overrides, default_name=path.stem)


def parse_taskset_bytes(
    data: bytes,
    fmt: Format,
    overrides: SpecOverrides = SpecOverrides(),
    *,
    default_name: str | None = None,
) -> TaskSetSpec:
    """Validate a task set from raw file bytes. `default_name` (e.g. the file name) is used when
    neither the file nor `overrides` name the set."""
    given = _given(overrides)
    source = _READERS[fmt](_decode(data))
    spec = source.spec | given
    if default_name is not None:
        spec.setdefault("name", default_name)
    source = replace(source, spec=spec, overridden=frozenset(given))
    problems = list(source.problems)
    try:
        taskset = TaskSetSpec.model_validate(spec)
    except ValidationError as exc:
        problems += [source.locate(error) for error in exc.errors()]
    if problems:
        raise TaskSetError(sorted(problems, key=lambda problem: problem.line or 0))
    return taskset


CAPTION_KEYS = ("name", "labels", "overlap", "reward", "answer")


def parse_caption(caption: str) -> SpecOverrides:
    """Read spec values from a chat upload caption: `name=x labels=a|b|c overlap=3 reward=0.02`
    (or `answer=text` instead of labels). Quote a value that has spaces:
    `labels="very good|bad"`."""
    try:
        words = shlex.split(caption)
    except ValueError as exc:  # an unclosed quote
        raise TaskSetError([_problem(f"caption: {exc}")]) from None
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for word in words:
        key, equals, value = word.partition("=")
        if not equals or key.lower() not in CAPTION_KEYS:
            problems.append(
                _problem(
                    f"caption: {word!r} is not one of "
                    + ", ".join(f"{known}=" for known in CAPTION_KEYS)
                )
            )
        else:
            values[key.lower()] = value
    overlap: int | None = None
    if "overlap" in values:
        try:
            overlap = int(values["overlap"])
        except ValueError:
            problems.append(
                Problem(None, None, "overlap", f"{values['overlap']!r} is not a whole number")
            )
    if problems:
        raise TaskSetError(problems)
    labels = values.get("labels")
    return SpecOverrides(
        name=values.get("name"),
        # The CLI separates labels with commas; accept them in a caption too.
        labels=labels.replace(",", "|").split("|") if labels else None,
        overlap=overlap,
        reward=values.get("reward"),
        answer=values.get("answer"),
    )


@dataclass(frozen=True)
class _Source:
    """A file read into the raw shape `TaskSetSpec` validates, with where each part came from."""

    spec: dict[str, object]
    item_lines: list[int] | None = None  # line of each entry of spec["items"]; None for JSON
    spec_line: int | None = None  # where the spec fields are, when they are on one line
    overridden: frozenset[str] = frozenset()  # spec fields that come from SpecOverrides
    missing_hint: str = ""
    problems: list[Problem] = field(default_factory=list)

    def locate(self, error: ErrorDetails) -> Problem:
        """Turn a pydantic error into a Problem naming the line, item id and field."""
        loc = error["loc"]
        message = self._message(error)
        if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int):
            index = loc[1]
            line = self.item_lines[index] if self.item_lines is not None else None
            item = self._item_id(index)
            if line is None and item is None:
                return Problem(None, None, _path(loc), message)
            return Problem(line, item, _path(loc[2:]) or None, message)
        line = None if loc and loc[0] in self.overridden else self.spec_line
        return Problem(line, None, _path(loc) or None, message)

    def _message(self, error: ErrorDetails) -> str:
        context = error.get("ctx", {})
        if error["type"] == DUPLICATE_ID and self.item_lines is not None:
            return f"duplicate id, also on line {self.item_lines[context['first_index']]}"
        match error["type"]:
            case "missing":
                return "is required" + (self.missing_hint if len(error["loc"]) == 1 else "")
            case "extra_forbidden":
                return "unknown field"
            case "too_short":
                return (
                    f"needs at least {context['min_length']} entries,"
                    f" got {context['actual_length']}"
                )
            case "too_long":
                return (
                    f"takes at most {context['max_length']:,} entries,"
                    f" got {context['actual_length']:,}"
                )
            case "model_type" | "model_attributes_type" | "dict_type":
                return "must be an object with named fields"
            case "value_error":
                return str(context["error"])
        return error["msg"]

    def _item_id(self, index: int) -> str | None:
        items = self.spec.get("items")
        entry = items[index] if isinstance(items, list) and index < len(items) else None
        item_id = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(item_id, bool) or not isinstance(item_id, str | int):
            return None
        return str(item_id).strip() or None


def _read_json(text: str) -> _Source:
    document = _load_json(text, line=None)
    if not isinstance(document, dict):
        raise TaskSetError([_problem('the file must hold one JSON object: {"name": ...}')])
    return _Source(spec=document)


def _read_jsonl(text: str) -> _Source:
    lines = [(number, line) for number, line in enumerate(text.split("\n"), 1) if line.strip()]
    (spec_line, header), *rest = lines  # _decode refuses empty text
    spec = _load_json(header, line=spec_line)
    if not isinstance(spec, dict):
        raise TaskSetError(
            [Problem(spec_line, None, None, "the first line must be the spec as a JSON object")]
        )
    if "items" in spec:
        raise TaskSetError(
            [Problem(spec_line, None, "items", "put each item on its own line after the spec")]
        )
    items: list[object] = []
    item_lines: list[int] = []
    problems: list[Problem] = []
    for number, line in rest:
        try:
            items.append(_load_json(line, line=number))
        except TaskSetError as exc:
            problems += exc.problems
        else:
            item_lines.append(number)
    return _Source(
        spec={**spec, "items": items},
        item_lines=item_lines,
        spec_line=spec_line,
        problems=problems,
    )


def _read_csv(text: str) -> _Source:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    surplus = 0  # rows beyond the header and MAX_ITEMS items: counted, not kept
    problems: list[Problem] = []
    start = 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                if len(rows) <= MAX_ITEMS:
                    rows.append((start, row))
                else:
                    surplus += 1
            start = reader.line_num + 1
    except csv.Error as exc:
        problems.append(Problem(start, None, None, f"invalid CSV: {exc}"))
    header_line, header = rows[0] if rows else (start, [])
    if len(header) > MAX_CSV_COLUMNS:
        raise TaskSetError(
            [
                Problem(
                    header_line,
                    None,
                    None,
                    f"the header has {len(header):,} columns; a task set file has at most"
                    f" {len(CSV_COLUMNS)}: {','.join(CSV_COLUMNS)}",
                )
            ]
        )
    if surplus:
        count = len(rows) - 1 + surplus
        raise TaskSetError(
            [Problem(None, None, "items", f"takes at most {MAX_ITEMS:,} entries, got {count:,}")]
        )
    columns = [name.strip().lower() for name in header]
    if "id" not in columns:
        found = ",".join(header)
        found = found if len(found) <= 80 else found[:80] + "…"
        raise TaskSetError(
            [
                *problems,
                Problem(
                    header_line,
                    None,
                    None,
                    f"missing header: the first row must name the columns, e.g. id,text"
                    f" (found {found!r})",
                ),
            ]
        )
    unknown = [name for name in columns if name not in CSV_COLUMNS]
    repeated = {name for name, uses in Counter(columns).items() if uses > 1}
    problems += [
        Problem(header_line, None, name, f"unknown column (known: {', '.join(CSV_COLUMNS)})")
        for name in unknown
    ]
    problems += [Problem(header_line, None, name, "column appears twice") for name in repeated]
    if problems:
        raise TaskSetError(problems)
    items: list[dict[str, str]] = []
    item_lines: list[int] = []
    for line, row in rows[1:]:
        if len(row) > len(columns):
            problems.append(
                Problem(line, None, None, f"{len(row)} values for {len(columns)} columns")
            )
            continue
        # Empty cells are absent fields; short rows just leave trailing columns empty.
        cells = zip(columns, row, strict=False)
        items.append({name: cell.strip() for name, cell in cells if cell.strip()})
        item_lines.append(line)
    hint = " (a CSV file holds only items: give it as a command-line option or in the caption)"
    return _Source(
        spec={"items": items}, item_lines=item_lines, missing_hint=hint, problems=problems
    )


_READERS: dict[Format, Callable[[str], _Source]] = {
    "json": _read_json,
    "jsonl": _read_jsonl,
    "csv": _read_csv,
}


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")  # spreadsheets often save UTF-8 with a byte order mark
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TaskSetError(
            [Problem(line, None, None, "not UTF-8 text: save the file with UTF-8 encoding")]
        ) from None
    if not text.strip():
        raise TaskSetError([_problem("the file is empty")])
    return text


def _load_json(text: str, *, line: int | None) -> object:
    """Parse JSON with exact decimals (a reward of 0.1 must never pass through float)."""
    try:
        return json.loads(text, parse_float=_json_decimal, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        at = exc.lineno if line is None else line
        message = f"invalid JSON: {exc.msg} (column {exc.colno})"
        raise TaskSetError([Problem(at, None, None, message)]) from None
    except (ValueError, RecursionError) as exc:  # out-of-range numbers, absurd nesting
        raise TaskSetError([Problem(line, None, None, f"invalid JSON: {exc}")]) from None


def _json_decimal(literal: str) -> Decimal:
    number = Decimal(literal)
    if abs(number.adjusted()) > _MAX_NUMBER_EXPONENT:
        raise ValueError(f"number {literal} is out of range")
    return number


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def _given(overrides: SpecOverrides) -> dict[str, object]:
    return {key: value for key, value in vars(overrides).items() if value is not None}


def _path(loc: Sequence[int | str]) -> str:
    """Render a pydantic location as a field path: ("labels", 1, "value") -> labels[1].value."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _problem(message: str) -> Problem:
    """A problem with the file as a whole."""
    return Problem(None, None, None, message)
