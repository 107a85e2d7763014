"""The ledger's batch jobs on the command line: ``labelbot payouts`` and ``labelbot bonuses``
(README, "Command line", is their contract).

``payouts --min AMOUNT --out FILE`` lists every worker whose available money (less what open
batches list already) reaches the minimum, as a new batch, in a formula-safe CSV;
``payouts --mark-paid FILE`` writes the payout entries of exactly that file, once;
``payouts --cancel BATCH`` gives up a listing that will not be paid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The CLI builds its parser from this module: the storage and money modules are imported by
# the commands that use them, so the other commands start without SQLAlchemy.
if TYPE_CHECKING:
    from bot.settings import Settings
    from storage.store import LabelStore

EXIT_INVALID = 2


def add_commands(commands: Any) -> None:
    """Add ``payouts`` and ``bonuses`` to the CLI's subcommands."""
    payouts = commands.add_parser(
        "payouts", help="list workers to pay (--out), or mark a listed file paid (--mark-paid)"
    )
    action = payouts.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, metavar="FILE", help="write the payouts CSV here")
    action.add_argument(
        "--mark-paid", type=Path, metavar="FILE", help="write payout entries for this file"
    )
    action.add_argument(
        "--cancel", type=int, metavar="BATCH", help="give up a listed batch that was not paid"
    )
    payouts.add_argument("--min", metavar="AMOUNT", help="smallest amount to pay, e.g. 5.00")
    payouts.add_argument("--currency", help="currency to pay (default: the only one there is)")
    payouts.set_defaults(handler=cmd_payouts)

    bonuses = commands.add_parser("bonuses", help="grant a task set's accuracy bonus now")
    bonuses.add_argument("name")
    bonuses.set_defaults(handler=cmd_bonuses)


def fail(message: str) -> int:
    print(f"labelbot: {message}", file=sys.stderr)
    return EXIT_INVALID


def cmd_payouts(args: argparse.Namespace, settings: Settings) -> int:
    from bot.cli import with_store

    if args.out is not None:
        if args.min is None:
            return fail("payouts --out needs --min AMOUNT, the smallest amount to pay")
        return with_store(settings, lambda store: list_payouts(store, args))
    if args.mark_paid is not None:
        return with_store(settings, lambda store: mark_paid(store, args.mark_paid))
    return with_store(settings, lambda store: cancel(store, args.cancel))


async def list_payouts(store: LabelStore, args: argparse.Namespace) -> int:
    from bot.cli import output
    from tasksets.money import format_money, to_minor
    from tasksets.payouts import write_payouts

    currencies = await store.ledger.currencies()
    currency = args.currency.upper() if args.currency else None
    if currency is None:
        if len(currencies) > 1:
            return fail(f"the ledger holds {', '.join(currencies)}: choose one with --currency")
        currency = currencies[0] if currencies else "USD"
    try:
        min_minor = to_minor(args.min, currency)
    except ValueError as error:
        return fail(f"--min: {error}")
    listing = await store.ledger.list_payouts(min_minor, currency)
    with output(args.out) as out:
        write_payouts(listing.rows, out)
    total = sum(row.amount_minor for row in listing.rows)
    if listing.batch_id is None:
        print(f"nobody has {format_money(min_minor, currency)} available; wrote {args.out}")
    else:
        print(
            f"batch {listing.batch_id}: {len(listing.rows)} workers, "
            f"{format_money(total, currency)} in all; wrote {args.out}. After paying, run "
            f"`labelbot payouts --mark-paid {args.out}`"
        )
    return 0


async def mark_paid(store: LabelStore, path: Path) -> int:
    from storage.ledger import MarkedPaid
    from tasksets.money import format_money
    from tasksets.payouts import PayoutFileError, read_payouts

    try:
        with path.open(encoding="utf-8", newline="") as stream:
            rows = read_payouts(stream)
    except (OSError, PayoutFileError) as error:
        return fail(f"{path}: {error}")
    result = await store.ledger.mark_paid(rows)
    if not isinstance(result, MarkedPaid):
        return fail(f"{path} refused, nothing was written: {result.reason}")
    print(
        f"batch {result.batch_id} marked paid: {result.workers} workers, "
        f"{format_money(result.total_minor, result.currency)} in all"
    )
    return 0


async def cancel(store: LabelStore, batch_id: int) -> int:
    if not await store.ledger.cancel_payouts(batch_id):
        return fail(f"batch {batch_id} is not an open listing (paid, cancelled or unknown)")
    print(f"batch {batch_id} cancelled: its money may be listed again")
    return 0


def cmd_bonuses(args: argparse.Namespace, settings: Settings) -> int:
    from bot.cli import with_store
    from tasksets.money import format_money

    async def grant(store: LabelStore) -> int:
        taskset_id = await store.taskset_id(args.name)
        if taskset_id is None:
            return fail(f"no task set named {args.name!r}")
        granted = await store.ledger.grant_bonuses(taskset_id)
        for bonus in granted:
            amount = format_money(bonus.amount_minor, bonus.currency)
            print(f"worker {bonus.worker_id}: +{amount} ({bonus.reason})")
        if not granted:
            print("no new bonuses: nobody else qualifies, or the set offers none")
        return 0

    return with_store(settings, grant)
