"""Normalise free-text answers so that spellings of the same answer compare equal.

``normalise`` applies, in order:

1. Unicode NFKC, then ``str.casefold``, then NFKC again (casefolding can leave a string that is
   no longer NFKC, e.g. ``"ǰ"``); composed and decomposed accents, full-width and other
   compatibility forms (``"Ａ"``, ``"ﬁ"``, ``"①"``) all become one form. Accents are kept:
   ``"café"`` and ``"cafe"`` stay different words.
2. Apostrophes: ``'``, ``‘``, ``’`` and ``ʼ`` (U+02BC) between two word characters (letters,
   digits) become ``'`` and are kept, so ``"don’t"`` equals ``"don't"`` and ``"it's"`` stays
   apart from ``"its"``. Anywhere else (quotes, ``"workers'"``) they count as punctuation.
3. Punctuation (every character of a Unicode category ``P*``: ``. , ! ? - — " « » ( ) _``,
   and also ``% & # @ * /``, which Unicode counts as punctuation too) becomes a space, so
   ``"well-known"`` reads as ``"well known"``, ``"U.S.A."`` as ``"u s a"`` and ``"5%"`` as
   ``"5"``. Symbols (categories ``S*``) are kept: ``$ € + = < > ^ | ~`` and emoji are content
   in a free-text answer (``"👍"`` is an answer; ``"$5"`` is not ``"5"``).
4. Invisible characters are removed: control characters (category ``Cc``) that are not
   whitespace, soft hyphen, zero-width space, word joiner, byte-order mark and the emoji
   variation selectors U+FE0E/U+FE0F (so ``"❤️"`` equals ``"❤"``). Zero-width joiner and
   non-joiner stay: they change the meaning of emoji sequences and of Indic and Persian text.
5. Whitespace (anything ``str.split`` splits on, newlines and U+3000 included) is collapsed to
   one space and stripped from both ends.

The result is idempotent: ``normalise(normalise(text)) == normalise(text)``. Its words are
``normalise(text).split(" ")`` (or ``.split()``, which also gives ``[]`` for ``""``).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import cache

APOSTROPHE = "'"
_APOSTROPHES = "'\u2018\u2019\u02bc"
_INVISIBLE = "\u00ad\u200b\u2060\ufeff\ufe0e\ufe0f"
# An apostrophe not between two word characters is punctuation.
# (Written to start with the apostrophe: ``re`` then scans for it instead of trying the
# lookbehind at every position, three times faster.)
_LOOSE_APOSTROPHE = re.compile(r"'(?:(?<!\w')|(?!\w))")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_OTHER_APOSTROPHES = re.compile("[" + _APOSTROPHES[1:] + "]")


@dataclass(frozen=True, slots=True)
class _Tables:
    invisible: re.Pattern[str]  # removed
    punctuation: re.Pattern[str]  # in the Basic Multilingual Plane; a run becomes one space
    astral_punctuation: re.Pattern[str]  # above U+FFFF, for the rare text that has any
    ascii_punctuation: bytes  # bytes.translate table for ASCII text: punctuation to space
    ascii_invisible: bytes  # ASCII control characters that are not whitespace


@cache
def _tables() -> _Tables:
    """Character classes over the whole code space, built from ``unicodedata`` on first use.

    Regular expressions rather than ``str.translate``, which looks up every character in a
    Python dict (about 5 µs a sentence); the punctuation class is split at U+FFFF because
    ``re`` compiles a class within the BMP to a bitmap but checks astral ranges one by one.
    ASCII text, the common case, skips both for one ``bytes.translate``.
    """
    invisible = [ord(char) for char in _INVISIBLE]
    punctuation: list[int] = []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        category = unicodedata.category(char)
        if category[0] == "P" and char not in _APOSTROPHES:
            punctuation.append(code)
        elif category == "Cc" and not char.isspace():
            invisible.append(code)
    ascii_table = bytearray(range(256))
    for code in punctuation:
        if code < 128:
            ascii_table[code] = ord(" ")
    return _Tables(
        invisible=re.compile(_character_class(invisible)),
        punctuation=re.compile(_character_class([c for c in punctuation if c <= 0xFFFF]) + "+"),
        astral_punctuation=re.compile(_character_class([c for c in punctuation if c > 0xFFFF])),
        ascii_punctuation=bytes(ascii_table),
        ascii_invisible=bytes(code for code in invisible if code < 128),
    )


def _character_class(codes: list[int]) -> str:
    """A regex class matching exactly ``codes``, written as ranges of escaped code points."""
    parts: list[str] = []
    codes = sorted(set(codes))
    start = previous = codes[0]
    for code in [*codes[1:], -1]:
        if code == previous + 1:
            previous = code
            continue
        parts.append(f"\\U{start:08x}" + ("" if start == previous else f"-\\U{previous:08x}"))
        start = previous = code
    return "[" + "".join(parts) + "]"


def normalise(text: str) -> str:
    """The normal form of ``text``: see the module docstring for each step."""
    tables = _tables()
    if text.isascii():
        # NFKC leaves ASCII alone and casefold is lower(); no other apostrophe can occur.
        raw = (
            text.lower().encode("ascii").translate(tables.ascii_punctuation, tables.ascii_invisible)
        )
        text = raw.decode("ascii")
    else:
        # Invisible characters go first: removed later, they could leave a mark to compose.
        text = tables.invisible.sub("", text)
        text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        text = _OTHER_APOSTROPHES.sub(APOSTROPHE, text)
        text = tables.punctuation.sub(" ", text)
        if _ASTRAL.search(text):
            text = tables.astral_punctuation.sub(" ", text)
    if APOSTROPHE in text:
        text = _LOOSE_APOSTROPHE.sub(" ", text)
    return " ".join(text.split())


def words(text: str) -> list[str]:
    """The words of ``normalise(text)``; ``[]`` for a text with none."""
    return normalise(text).split()
