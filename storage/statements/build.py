"""Helpers for statements whose parameters must carry their column's type."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, bindparam, insert, select

from storage.models import Base


def typed_bind(name: str, column: Any) -> Any:
    """A parameter typed like ``column``: statements that insert from a SELECT need the types
    that ``INSERT ... VALUES`` takes from its columns."""
    return bindparam(name, type_=column.type)


def insert_from_select(model: type[Base], values: dict[str, Any], source: Any) -> Insert:
    """``INSERT INTO model (...) SELECT <values> FROM source``: one row per row of ``source``."""
    return insert(model).from_select(list(values), select(*values.values()).select_from(source))
