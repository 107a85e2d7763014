"""Handing out items: pick an open item for a worker, lease it, and take leases back.

An item's ``in_flight`` counts its live leases and ``open`` says whether it still has a free
slot (answers + leases < needed); every statement here keeps both right in the same statement
that changes a lease.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    Update,
    and_,
    bindparam,
    exists,
    insert,
    literal,
    select,
    update,
)

from storage.models import (
    Assignment,
    AssignmentState,
    Item,
    Membership,
    TaskSet,
    Worker,
    WorkerStatus,
)
from storage.statements.build import insert_from_select, typed_bind
from storage.statements.shapes import Standing, columns_named

ITEM_CONTENT = (Item.id, Item.text, Item.media_kind, Item.media_ref)


def not_given_to_worker() -> Any:
    return ~exists().where(
        Assignment.worker_id == bindparam("worker"), Assignment.item_id == Item.id
    )


def open_slot_values() -> dict[str, Any]:
    """Take one lease slot; ``open`` follows the counters in the same statement."""
    return {
        "in_flight": Item.in_flight + 1,
        "open": Item.answer_count + Item.in_flight + 1 < Item.needed,
    }


def pick_regular_query(*, lock: bool) -> Any:
    """The next open item for a worker: started items first, then file order.

    It walks ``ix_items_pick`` in order and stops at the first item the worker has not been
    given, so its cost depends on the worker's history, not on the size of the set.
    """
    query = (
        select(Item.id)
        .where(
            Item.taskset_id == bindparam("taskset"),
            Item.is_gold.is_(False),
            Item.open.is_(True),
            Item.set_aside_reason.is_(None),
            not_given_to_worker(),
        )
        .order_by(Item.answer_count.desc(), Item.position)
        .limit(1)
    )
    # Two processes never take the same row: the second skips it and takes the next one.
    return query.with_for_update(skip_locked=True) if lock else query


def lease_regular_statement(pick: Any) -> Update:
    """Pick and take a slot in one round trip; no row means nothing left (or a lost race)."""
    return (
        update(Item)
        .where(Item.id == pick.scalar_subquery(), Item.open.is_(True))
        .values(open_slot_values())
        .returning(*ITEM_CONTENT)
    )


def pick_gold_query(*, after: bool) -> Any:
    """An unseen gold item from a random starting position (wrapping around once)."""
    start = bindparam("start", type_=Item.position.type)
    return (
        select(*ITEM_CONTENT)
        .where(
            Item.taskset_id == bindparam("taskset"),
            Item.is_gold.is_(True),
            Item.position >= start if after else Item.position < start,
            Item.set_aside_reason.is_(None),
            not_given_to_worker(),
        )
        .order_by(Item.position)
        .limit(1)
    )


WORKER_STATE = (
    select(
        Worker.current_taskset_id,
        Worker.status.label("worker_status"),
        *columns_named(Membership, Standing),
        TaskSet.status.label("taskset_status"),
    )
    .select_from(Worker)
    .outerjoin(
        Membership,
        and_(
            Membership.worker_id == Worker.id,
            Membership.taskset_id == Worker.current_taskset_id,
        ),
    )
    .outerjoin(TaskSet, TaskSet.id == Worker.current_taskset_id)
    .where(Worker.id == bindparam("worker"))
)

LIVE_LEASE = (
    select(Assignment.token, Item.text, Item.media_kind, Item.media_ref)
    .join(Item, Item.id == Assignment.item_id)
    .where(
        Assignment.worker_id == bindparam("worker"),
        Assignment.taskset_id == bindparam("taskset"),
        Assignment.state == AssignmentState.LEASED,
        Assignment.expires_at > bindparam("now"),
    )
    .limit(1)
)


def assignment_values(item_id: Any) -> dict[str, Any]:
    """A new lease's columns, bound to the parameters of the lease statements."""
    return {
        "token": typed_bind("token", Assignment.token),
        "worker_id": typed_bind("worker", Assignment.worker_id),
        "item_id": item_id,
        "taskset_id": typed_bind("taskset", Assignment.taskset_id),
        "state": literal(AssignmentState.LEASED, type_=Assignment.state.type),
        "served_at": typed_bind("now", Assignment.served_at),
        "expires_at": typed_bind("expires", Assignment.expires_at),
    }


INSERT_ASSIGNMENT = insert(Assignment).values(
    assignment_values(typed_bind("item", Assignment.item_id))
)
TAKE_SLOT = (
    update(Item).where(Item.id == bindparam("item"), Item.open.is_(True)).values(open_slot_values())
)


def lease_and_assign_statement(lease: Update) -> Select[Any]:
    """The lease statement and INSERT_ASSIGNMENT of the item it took, as one statement."""
    leased = lease.cte("leased")
    assigned = insert_from_select(Assignment, assignment_values(leased.c.id), leased)
    return select(*leased.c).add_cte(assigned.cte("assigned"))


def free_slots_statement() -> Update:
    """Give back the ``freed`` lease slots of expired leases of an item."""
    freed = bindparam("freed", type_=Integer)
    return (
        update(Item)
        .where(Item.id == bindparam("item"), Item.is_gold.is_(False))
        .values(
            in_flight=Item.in_flight - freed,
            open=Item.answer_count + Item.in_flight - freed < Item.needed,
        )
    )


FREE_SLOTS = free_slots_statement()


def expire_statement(condition: Any) -> Any:
    return (
        update(Assignment)
        .where(Assignment.state == AssignmentState.LEASED, condition)
        .values(state=AssignmentState.EXPIRED)
        .returning(Assignment.item_id)
    )


EXPIRE_DUE = expire_statement(Assignment.expires_at <= bindparam("now"))
EXPIRE_WORKER = expire_statement(Assignment.worker_id == bindparam("worker"))
EXPIRE_WORKER_IN_SET = expire_statement(
    and_(Assignment.worker_id == bindparam("worker"), Assignment.taskset_id == bindparam("taskset"))
)
EXPIRE_LEASE = expire_statement(Assignment.token == bindparam("token"))
# An item Telegram refuses to show: kept out of every later pick, with the reason for the
# coordinator.
SET_ASIDE_ITEM = (
    update(Item)
    .where(
        Item.id
        == select(Assignment.item_id)
        .where(Assignment.token == bindparam("token"))
        .scalar_subquery()
    )
    .values(set_aside_reason=bindparam("reason", type_=Item.set_aside_reason.type))
)

WORKER_INACTIVE = (
    update(Worker).where(Worker.id == bindparam("worker")).values(status=WorkerStatus.INACTIVE)
)
