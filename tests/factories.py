"""Builders for task sets used across tests."""

from __future__ import annotations

from typing import Any

from tasksets.spec import TaskSetSpec

LABELS = ["positive", "negative", "neutral"]


def make_spec(
    name: str = "sentiment",
    *,
    items: int = 20,
    gold: int = 0,
    overlap: Any = 2,
    reward: str = "0.02",
    gold_ratio: float = 0.0,
    labels: list[Any] | None = None,
    **extra: Any,
) -> TaskSetSpec:
    """A task set with ``items`` regular items (``t0``...) and ``gold`` gold ones (``g0``...)."""
    rows: list[dict[str, Any]] = [{"id": f"t{i}", "text": f"text number {i}"} for i in range(items)]
    rows += [
        {"id": f"g{i}", "text": f"control {i}", "gold": LABELS[i % 2], "explanation": f"why {i}"}
        for i in range(gold)
    ]
    return TaskSetSpec.model_validate(
        {
            "name": name,
            "title": name.title(),
            "instructions": "Pick the feeling the author expresses.",
            "question": "What is the sentiment?",
            "labels": labels or LABELS,
            "overlap": overlap,
            "reward": reward,
            "gold_ratio": gold_ratio,
            "items": rows,
            **extra,
        }
    )
