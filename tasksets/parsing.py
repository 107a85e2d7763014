"""Read task set files (JSON, JSONL, CSV) into a validated `TaskSetSpec`.

Every problem found is reported, not only the first, each naming where it is: the line (JSON
syntax errors; every JSONL and CSV item), the item id and the field. Arbitrary bytes either
parse or raise `TaskSetError`; nothing else escapes.
"""

from __future__ import annotations

import csv
import io
import json
import json.scanner
import shlex
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from tasksets.spec import (
    MAX_ITEMS,
    CrossItemError,
    Item,
    ItemChecks,
    TaskSetHeader,
    TaskSetSpec,
)

Format = Literal["json", "jsonl", "csv"]
_FORMAT_OF_SUFFIX: dict[str, Format] = {".json": "json", ".jsonl": "jsonl", ".csv": "csv"}
CSV_COLUMNS = ("id", "text", "image", "audio", "video", "gold", "explanation")
# A header wider than this is refused before its columns are checked one by one.
MAX_CSV_COLUMNS = 64
# Items validated, checked and handed to storage at a time.
CHUNK_ITEMS = 5000
# Problems listed for one file, the first ones by line; a file of millions of bad lines is
# counted past these, not kept.
MAX_PROBLEMS = 1000
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
    """Read and validate the task set file at `path`, all its items in memory."""
    with open_taskset(path, overrides) as taskset:
        return taskset.read_all()


def parse_taskset_bytes(
    data: bytes,
    fmt: Format,
    overrides: SpecOverrides = SpecOverrides(),
    *,
    default_name: str | None = None,
) -> TaskSetSpec:
    """Validate a task set from raw file bytes. `default_name` (e.g. the file name) is used when
    neither the file nor `overrides` name the set."""
    return TaskSetStream(io.BytesIO(data), fmt, overrides, default_name=default_name).read_all()


@contextmanager
def open_taskset(path: Path, overrides: SpecOverrides = SpecOverrides()) -> Iterator[TaskSetStream]:
    """The task set file at `path`, its header validated, its items still to be read (the
    format comes from the extension). Raises TaskSetError for a file whose header is wrong."""
    fmt = _FORMAT_OF_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise TaskSetError(
            [_problem(f"unsupported file type {path.suffix!r}: use .json, .jsonl or .csv")]
        )
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise TaskSetError([_problem(f"cannot read {path}: {exc.strerror}")]) from None
    with stream:
        yield TaskSetStream(stream, fmt, overrides, default_name=path.stem)


class TaskSetStream:
    """A task set file read as it is loaded: the header (every spec field but the items) is
    validated on opening, the items one by one as `item_chunks` reads them. Memory holds one
    chunk of items, never the file's items (JSON excepted: one document, parsed whole).

    Problems are reported as by a whole-file check: every one, each naming its line, item and
    field. A file whose header is wrong raises TaskSetError at once (after reading its items
    for their problems too)."""

    def __init__(
        self,
        stream: BinaryIO,
        fmt: Format,
        overrides: SpecOverrides = SpecOverrides(),
        *,
        default_name: str | None = None,
    ) -> None:
        source = _READERS[fmt](stream)
        given = _given(overrides)
        spec = source.spec | given
        if default_name is not None:
            spec.setdefault("name", default_name)
        self._source = replace(source, overridden=frozenset(given))
        self._found: list[tuple[tuple[int, int, int], Problem]] = []
        self._dropped = 0  # problems found past the MAX_PROBLEMS first ones
        self.count = 0  # entries read so far (an entry is an item, valid or not)
        header: TaskSetHeader | None = None
        try:
            header = TaskSetHeader.model_validate(spec)
        except ValidationError as exc:
            for error in exc.errors():
                self._add(self._source.locate_spec(error), _field_rank(error["loc"]))
        self._checks = ItemChecks(header)
        if header is None:
            for _ in self.item_chunks():  # raises TaskSetError with the items' problems too
                pass
        assert header is not None
        self.header = header

    @property
    def gold_items(self) -> int:
        return self._checks.gold_items

    def item_chunks(self, size: int = CHUNK_ITEMS) -> Iterator[list[Item]]:
        """The valid items, `size` at a time, each after every check it can have once its own
        and earlier entries are read. Once a problem is found nothing more is yielded, and
        after the last entry TaskSetError lists every problem in the file."""
        entries: list[object] = []
        lines: list[int | None] = []
        for line, entry in self._source.items:
            if isinstance(entry, Problem):
                self._add(entry, _ITEMS_RANK)
                continue
            self.count += 1
            if self.count > MAX_ITEMS:
                continue  # counted, not checked
            entries.append(entry)
            lines.append(line)
            if len(entries) == size:
                chunk = self._validated(entries, lines, self.count - size)
                if not self._found:
                    yield chunk
                entries, lines = [], []
        chunk = self._validated(entries, lines, self.count - len(entries)) if entries else []
        self._check_count()
        for found in self._checks.finish(self.count):
            self._add_cross_item(found)
        if self._found:
            ordered = sorted(self._found, key=_first)
            problems = [problem for _, problem in ordered[:MAX_PROBLEMS]]
            dropped = self._dropped + len(ordered) - len(problems)
            if dropped:
                problems.append(_problem(f"and {dropped:,} more problems"))
            raise TaskSetError(problems)
        if chunk:
            yield chunk

    def read_all(self) -> TaskSetSpec:
        """Every item, in one validated TaskSetSpec."""
        items = [item for chunk in self.item_chunks() for item in chunk]
        fields = dict(self.header) | {"items": items}
        # Validated already, item by item and across items: construct, don't check again.
        return TaskSetSpec.model_construct(self.header.model_fields_set | {"items"}, **fields)

    def _validated(self, entries: list[object], lines: list[int | None], start: int) -> list[Item]:
        """The valid items among entries (entry k is the set's entry start+k, on lines[k]),
        after the checks across items; the problems of the others are recorded."""
        try:
            # One call for the chunk, the way it is fastest: most chunks are valid.
            items = _ITEM_LIST.validate_python(entries)
            indexes = list(range(start, start + len(entries)))
            item_lines = lines
        except ValidationError:
            # Then one entry at a time, to keep the valid ones and name the others.
            items, indexes, item_lines = [], [], []
            for offset, (entry, line) in enumerate(zip(entries, lines, strict=True)):
                try:
                    items.append(Item.model_validate(entry))
                except ValidationError as exc:
                    for error in exc.errors():
                        problem = self._source.locate_item(error, start + offset, line, entry)
                        self._add(problem, _ITEMS_RANK, start + offset)
                    continue
                indexes.append(start + offset)
                item_lines.append(line)
        known_lines = [line or 0 for line in item_lines] if self._source.item_lines else None
        for found in self._checks.check(items, indexes, known_lines):
            self._add_cross_item(found)
        return items

    def _check_count(self) -> None:
        if self._source.items_problem is not None:
            message = self._source.items_problem
        elif self.count == 0:
            message = "needs at least 1 entries, got 0"
        elif self.count > MAX_ITEMS:
            message = f"takes at most {MAX_ITEMS:,} entries, got {self.count:,}"
        else:
            return
        problem = Problem(self._source.spec_line, None, "items", message)
        self._add(problem, _field_rank(("items",)))

    def _add_cross_item(self, found: CrossItemError) -> None:
        [error] = ValidationError.from_exception_data("TaskSetSpec", [found.error]).errors()
        loc = error["loc"]
        if loc[0] != "items":  # an error of the set as a whole (not enough gold)
            self._add(self._source.locate_spec(error), _ITEMS_RANK, MAX_ITEMS)
            return
        index = loc[1]
        assert isinstance(index, int)
        problem = Problem(found.line, found.item, _path(loc[2:]), _message(error))
        self._add(problem, _ITEMS_RANK, index)

    def _add(self, problem: Problem, rank: int, index: int = 0) -> None:
        # In line order; without lines (JSON) in the order of the spec's fields, items by index.
        self._found.append(((problem.line or 0, rank, index), problem))
        if len(self._found) > 2 * MAX_PROBLEMS:  # keep the first ones, count the others
            self._found.sort(key=_first)
            self._dropped += len(self._found) - MAX_PROBLEMS
            del self._found[MAX_PROBLEMS:]


_ITEM_LIST = TypeAdapter(list[Item])
_FIELD_RANKS = {name: rank for rank, name in enumerate(TaskSetSpec.model_fields)}
_ITEMS_RANK = _FIELD_RANKS["items"]
_HEADER_RANK = -1  # a problem of the spec as a whole comes first
_MISSING = object()


def _field_rank(loc: Sequence[int | str]) -> int:
    """Where a spec field's problems go in a list without lines: unknown fields last."""
    return _FIELD_RANKS.get(str(loc[0]), len(_FIELD_RANKS)) if loc else _HEADER_RANK


def _first(found: tuple[tuple[int, int, int], Problem]) -> tuple[int, int, int]:
    return found[0]


@dataclass(frozen=True)
class _Source:
    """A file opened for reading: its spec fields at once, its items as they are read, and
    where each part came from."""

    spec: dict[str, object]
    # (line or None, raw item or the Problem of an entry that could not be read)
    items: Iterator[tuple[int | None, object]]
    item_lines: bool = True  # whether the reader knows the line of each item (not in JSON)
    items_problem: str | None = None  # a JSON object without a list of items
    spec_line: int | None = None  # where the spec fields are, when they are on one line
    overridden: frozenset[str] = frozenset()  # spec fields that come from SpecOverrides
    missing_hint: str = ""

    def locate_spec(self, error: ErrorDetails) -> Problem:
        """Turn a pydantic error of a spec field into a Problem naming its line and field."""
        loc = error["loc"]
        line = None if loc and loc[0] in self.overridden else self.spec_line
        return Problem(line, None, _path(loc) or None, _message(error, self.missing_hint))

    def locate_item(
        self, error: ErrorDetails, index: int, line: int | None, entry: object
    ) -> Problem:
        """Turn a pydantic error of an item into a Problem naming its line, id and field."""
        loc = error["loc"]
        message = _message(error)
        item = _item_id(entry)
        if line is None and item is None:
            return Problem(None, None, _path(("items", index, *loc)), message)
        return Problem(line, item, _path(loc) or None, message)


def _message(error: ErrorDetails, missing_hint: str = "") -> str:
    context = error.get("ctx", {})
    match error["type"]:
        case "missing":
            return "is required" + (missing_hint if len(error["loc"]) == 1 else "")
        case "extra_forbidden":
            return "unknown field"
        case "too_short":
            return f"needs at least {context['min_length']} entries, got {context['actual_length']}"
        case "too_long":
            return (
                f"takes at most {context['max_length']:,} entries, got {context['actual_length']:,}"
            )
        case "model_type" | "model_attributes_type" | "dict_type":
            return "must be an object with named fields"
        case "value_error":
            return str(context["error"])
    return error["msg"]


def _item_id(entry: object) -> str | None:
    item_id = entry.get("id") if isinstance(entry, dict) else None
    if isinstance(item_id, bool) or not isinstance(item_id, str | int):
        return None
    return str(item_id).strip() or None


def _read_json(stream: BinaryIO) -> _Source:
    document = _load_json(_read_text(stream), line=None)
    if not isinstance(document, dict):
        raise TaskSetError([_problem('the file must hold one JSON object: {"name": ...}')])
    items = document.pop("items", None) if "items" in document else _MISSING
    return _Source(
        spec=document,
        items=((None, entry) for entry in (items if isinstance(items, list) else [])),
        item_lines=False,
        items_problem=(
            None
            if isinstance(items, list)
            else "is required"
            if items is _MISSING
            else "Input should be a valid list"
        ),
    )


def _read_jsonl(stream: BinaryIO) -> _Source:
    numbered = enumerate(_text(stream, newline="\n"), 1)  # lines split at "\n" only
    try:
        spec_line, header = next((number, line) for number, line in numbered if line.strip())
    except StopIteration:
        raise _empty(stream) from None
    except UnicodeDecodeError:
        raise _not_utf8(stream) from None
    spec = _load_json(header, line=spec_line)
    if not isinstance(spec, dict):
        raise TaskSetError(
            [Problem(spec_line, None, None, "the first line must be the spec as a JSON object")]
        )
    if "items" in spec:
        raise TaskSetError(
            [Problem(spec_line, None, "items", "put each item on its own line after the spec")]
        )

    def items() -> Iterator[tuple[int | None, object]]:
        try:
            for number, line in numbered:
                if line.strip():
                    try:
                        yield number, _load_json_line(line, number)
                    except TaskSetError as exc:
                        yield number, exc.problems[0]
        except UnicodeDecodeError:
            raise _not_utf8(stream) from None

    return _Source(spec=spec, items=items(), spec_line=spec_line)


def _read_csv(stream: BinaryIO) -> _Source:
    text = _text(stream, newline="")  # kept open here: _has_text reads the stream again
    rows = _csv_rows(text, stream)
    problems: list[Problem] = []
    header_line, header = 1, list[str]()
    for line, row in rows:
        if isinstance(row, Problem):
            problems.append(row)
        else:
            header_line, header = line, row
            break
    else:
        if not _has_text(stream):
            raise _empty(stream)
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
    columns = [name.strip().lower() for name in header]
    if "id" not in columns:
        found = ",".join(header)
        found = found if len(found) <= 80 else found[:80] + "…"
        problems += [row for _, row in rows if isinstance(row, Problem)]
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

    def items() -> Iterator[tuple[int | None, object]]:
        for line, row in rows:
            if isinstance(row, Problem):
                yield line, row
            elif len(row) > len(columns):
                yield (
                    line,
                    Problem(line, None, None, f"{len(row)} values for {len(columns)} columns"),
                )
            else:
                # Empty cells are absent fields; short rows just leave trailing columns empty.
                cells = zip(columns, row, strict=False)
                yield line, {name: value for name, cell in cells if (value := cell.strip())}

    hint = " (a CSV file holds only items: give it as a command-line option or in the caption)"
    return _Source(spec={}, items=items(), missing_hint=hint)


def _csv_rows(
    text: io.TextIOWrapper, stream: BinaryIO
) -> Iterator[tuple[int, list[str] | Problem]]:
    """The rows with a non-blank cell, each with the line it starts on; a CSV syntax error
    ends the file as a Problem."""
    reader = csv.reader(text)
    start = 1
    try:
        for row in reader:
            # A row is blank when every cell is; the first cell (the id) usually says it isn't.
            if (row and row[0].strip()) or "".join(row).strip():
                yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        yield start, Problem(start, None, None, f"invalid CSV: {exc}")
    except UnicodeDecodeError:
        raise _not_utf8(stream) from None


_READERS: dict[Format, Callable[[BinaryIO], _Source]] = {
    "json": _read_json,
    "jsonl": _read_jsonl,
    "csv": _read_csv,
}


def _read_text(stream: BinaryIO) -> str:
    text = _text(stream, newline="")
    try:
        whole = text.read()
    except UnicodeDecodeError:
        raise _not_utf8(stream) from None
    finally:
        text.detach()
    if not whole.strip():
        raise _empty(stream)
    return whole


def _text(stream: BinaryIO, newline: str) -> io.TextIOWrapper:
    # utf-8-sig: spreadsheets often save UTF-8 with a byte order mark.
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline=newline)


def _not_utf8(stream: BinaryIO) -> TaskSetError:
    """The error for a file that is not UTF-8, naming the first line that is not."""
    stream.seek(0)
    number = next(number for number, line in enumerate(stream, 1) if not _is_utf8(line))
    return TaskSetError(
        [Problem(number, None, None, "not UTF-8 text: save the file with UTF-8 encoding")]
    )


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _has_text(stream: BinaryIO) -> bool:
    stream.seek(0)
    return any(line.decode("utf-8-sig", errors="ignore").strip() for line in stream)


def _empty(stream: BinaryIO) -> TaskSetError:
    """The error for a file that decoded to white space: empty, or not UTF-8 after all (the
    decoder takes a lone start of a byte order mark at the end of a file for one, silently)."""
    stream.seek(0)
    if all(_is_utf8(line) for line in stream):
        return TaskSetError([_problem("the file is empty")])
    return _not_utf8(stream)


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


def _load_json(text: str, *, line: int | None) -> object:
    """Parse JSON with exact decimals (a reward of 0.1 must never pass through float)."""
    try:
        return _JSON.decode(text)
    except json.JSONDecodeError as exc:
        at = exc.lineno if line is None else line
        message = f"invalid JSON: {exc.msg} (column {exc.colno})"
        raise TaskSetError([Problem(at, None, None, message)]) from None
    except (ValueError, RecursionError) as exc:  # out-of-range numbers, absurd nesting
        raise TaskSetError([Problem(line, None, None, f"invalid JSON: {exc}")]) from None


def _load_json_line(text: str, line: int) -> object:
    """One JSONL line: the decoder's scanner straight on a line that starts with its value
    and ends after it (twice as fast as decode's checks around it); any other line, valid or
    not, goes through `_load_json` and its messages."""
    try:
        value, end = _SCAN_JSON(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return _load_json(text, line=line)
    return value if not text[end:].strip(" \t\r\n") else _load_json(text, line=line)


def _json_decimal(literal: str) -> Decimal:
    number = Decimal(literal)
    if abs(number.adjusted()) > _MAX_NUMBER_EXPONENT:
        raise ValueError(f"number {literal} is out of range")
    return number


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


# One decoder for every line of a JSONL file: json.loads with hooks would build one per call.
_JSON = json.JSONDecoder(parse_float=_json_decimal, parse_constant=_no_constant)
# What _JSON.decode calls, without its checks around (typeshed types the argument wrongly).
_SCAN_JSON: Callable[[str, int], tuple[object, int]] = json.scanner.make_scanner(_JSON)  # type: ignore[arg-type]


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
