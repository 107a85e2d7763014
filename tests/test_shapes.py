"""Rows of the hot path are read by column name, so a reordered RETURNING list cannot shift a
count into another field, and a missing column fails loudly."""

from __future__ import annotations

from collections import namedtuple

import pytest

from storage.models import MembershipStatus
from storage.statements.answers import STANDING_AFTER_ANSWER, answer_writes_statement
from storage.statements.leases import WORKER_STATE
from storage.statements.reviews import SCORE, STANDING_OF
from storage.statements.shapes import Standing, field_names, read_row


@pytest.mark.parametrize(
    "statement",
    [STANDING_AFTER_ANSWER, answer_writes_statement(), WORKER_STATE, SCORE, STANDING_OF],
    ids=["standing-after-answer", "merged-answer-writes", "worker-state", "score", "standing-of"],
)
def test_every_statement_read_as_a_standing_returns_its_fields(statement: object) -> None:
    returned = set(statement.exported_columns.keys())  # type: ignore[attr-defined]
    assert set(field_names(Standing)) <= returned


def test_a_row_is_read_by_name_whatever_its_column_order() -> None:
    Row = namedtuple(
        "Row", ["reviewer", "gold_correct", "answers", "status_reason", "gold_answers", "status"]
    )
    standing = read_row(Standing, Row(False, 3, 10, None, 4, MembershipStatus.ACTIVE))
    assert standing == Standing(MembershipStatus.ACTIVE, None, 10, 4, 3, False)


def test_a_row_missing_a_field_fails_loudly() -> None:
    Row = namedtuple("Row", ["status", "status_reason", "answers", "gold_answers", "reviewer"])
    with pytest.raises(AttributeError, match="gold_correct"):
        read_row(Standing, Row(MembershipStatus.ACTIVE, None, 10, 4, False))
