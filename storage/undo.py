"""The money of an undone answer, kept on the append-only ledger.

An answer's money is a chain of entries: its reward, then maybe a reversal of it, a restore of
that reversal, and so on (each entry is reversed at most once). Undoing the answer reverses the
chain's latest entry when it is positive, under an adjustment of kind ``undone`` ("answer
undone"); answering the reopened item again restores that reversal, under one of kind
``answered_again``. Nothing is updated or deleted, and a reinstatement restores only what a
suspension reversed (``storage.statements.ledger.restorable``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.driver import Transaction
from storage.models import LedgerKind
from storage.statements.answers import INSERT_REWARD
from storage.statements.ledger import ADD_TO_TOTAL, INSERT_ADJUSTMENT
from storage.statements.tallies import ADD_REWARD_TO_TOTALS
from storage.statements.undo import COUNTER_ENTRY, MONEY_END

UNDONE_REASON = "answer undone"
ANSWERED_AGAIN_REASON = "answered again"


async def take_back_money(tx: Transaction, answer_id: int, now: datetime) -> None:
    """Reverse what the answer's money chain stands at, if anything."""
    end = await tx.first(MONEY_END, {"answer_id": answer_id})
    if end is not None and end.amount_minor > 0:
        await _counter(tx, end, LedgerKind.UNDONE, UNDONE_REASON, now)


async def credit_again(tx: Transaction, params: dict[str, Any], now: datetime) -> None:
    """Credit the reward of an answer given again after an undo (the answer's own write
    parameters): restore the undo's reversal, or credit a first reward if it had none (a skip
    undone and answered with a label)."""
    end = await tx.first(MONEY_END, params)
    if end is None:
        await tx.run(INSERT_REWARD, params)
        await tx.run(ADD_REWARD_TO_TOTALS, params)
    elif end.amount_minor < 0:
        await _counter(tx, end, LedgerKind.ANSWERED_AGAIN, ANSWERED_AGAIN_REASON, now)


async def _counter(
    tx: Transaction, end: Any, adjustment: LedgerKind, reason: str, now: datetime
) -> None:
    """One entry against ``end`` (a reversal of money, a restore of a reversal) under a new
    adjustment, and the worker's totals moved by as much."""
    params = {"worker": end.worker_id, "taskset": end.taskset_id, "now": now, "entry": end.id}
    params["adjustment"] = await tx.value(
        INSERT_ADJUSTMENT,
        {**params, "adjustment_kind": adjustment.value, "adjustment_reason": reason},
    )
    entry = LedgerKind.REVERSAL if end.amount_minor > 0 else LedgerKind.RESTORE
    await tx.run(COUNTER_ENTRY[entry], params)
    await tx.run(
        ADD_TO_TOTAL,
        {"worker": end.worker_id, "in_currency": end.currency, "delta": -end.amount_minor},
    )
