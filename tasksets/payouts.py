"""The payouts file: one row per worker to pay, written with ``write_csv`` and read back to mark
exactly those rows paid. Pure: rows in, rows out, every problem named by its line."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from tasksets import money
from tasksets.export import BYTE_ORDER_MARK, write_csv

PAYOUT_COLUMNS = ("worker_id", "display_name", "amount", "currency", "batch_id")


@dataclass(frozen=True, slots=True)
class PayoutRow:
    worker_id: int
    display_name: str
    amount_minor: int
    currency: str
    batch_id: int


class PayoutFileError(ValueError):
    """A payouts file that cannot be read; the message names the line."""


def amount_text(minor: int, currency: str) -> str:
    """Minor units as a plain decimal ("12.34"), which a spreadsheet reads as a number."""
    places = money.minor_units(currency)
    major, fraction = divmod(minor, 10**places)
    return f"{major}.{fraction:0{places}d}" if places else str(major)


def write_payouts(rows: Iterable[PayoutRow], out: TextIO) -> int:
    """The formula-safe CSV of ``rows`` (UTF-8 with BOM, CRLF); returns the rows written."""
    return write_csv(
        (
            {
                "worker_id": row.worker_id,
                "display_name": row.display_name,
                "amount": amount_text(row.amount_minor, row.currency),
                "currency": row.currency,
                "batch_id": row.batch_id,
            }
            for row in rows
        ),
        PAYOUT_COLUMNS,
        out,
    )


def read_payouts(stream: TextIO) -> list[PayoutRow]:
    """The rows of a payouts file as ``write_payouts`` wrote it (a spreadsheet may have saved it
    again: the byte order mark and a quote before a formula-like name are both fine)."""
    text = stream.read().removeprefix(BYTE_ORDER_MARK)
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or tuple(cell.strip() for cell in header) != PAYOUT_COLUMNS:
        raise PayoutFileError(f"line 1: the header must be {','.join(PAYOUT_COLUMNS)}")
    rows = []
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(PAYOUT_COLUMNS):
            raise PayoutFileError(f"line {number}: expected {len(PAYOUT_COLUMNS)} cells")
        worker, name, amount, currency, batch = (cell.strip() for cell in cells)
        try:
            currency = currency.upper()
            row = PayoutRow(
                worker_id=int(worker),
                display_name=name.removeprefix("'"),
                amount_minor=money.to_minor(amount, currency),
                currency=currency,
                batch_id=int(batch),
            )
        except ValueError as error:
            raise PayoutFileError(f"line {number}: {error}") from None
        if row.amount_minor <= 0:
            raise PayoutFileError(f"line {number}: the amount must be positive")
        rows.append(row)
    return rows
