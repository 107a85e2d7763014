"""Typed shapes of the rows the hot path reads, matched to a statement's columns by name.

A statement that returns a shape's fields builds its column list from the shape
(``columns_named``), and the row is read back field by field (``read_row``): reordering a
RETURNING list cannot shift a balance into a count, and dropping a field fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

from storage.models import MembershipStatus

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

ShapeT = TypeVar("ShapeT", bound="DataclassInstance")


def field_names(shape: type[DataclassInstance]) -> list[str]:
    return [field.name for field in fields(shape)]


def columns_named(source: Any, shape: type[DataclassInstance]) -> list[Any]:
    """The columns of ``source`` (a model or a selectable's ``.c``) named like the fields."""
    return [getattr(source, name) for name in field_names(shape)]


def read_row(shape: type[ShapeT], row: Any) -> ShapeT:
    """``row`` (a named tuple from the driver) as ``shape``, each field by its column name."""
    return shape(**{name: getattr(row, name) for name in field_names(shape)})


@dataclass(frozen=True, slots=True)
class Standing:
    """A worker's membership in a set as the hot path reads it (columns of ``memberships``)."""

    status: MembershipStatus
    status_reason: str | None
    answers: int
    gold_answers: int
    gold_correct: int
    reviewer: bool
