"""The worker's own chart for /me: answers per day and accuracy on control questions, as a PNG.

matplotlib draws on its Agg canvas with a ``Figure`` of its own (no pyplot, no global state),
so the handler can run ``render`` in a worker thread (``asyncio.to_thread``) while the event
loop keeps answering taps. matplotlib is imported on first use.
"""

from __future__ import annotations

import io

from handlers import texts
from storage.standing import DayCount

WIDTH_INCHES, HEIGHT_INCHES, DPI = 8.0, 4.0, 100  # an 800 x 400 PNG


def render(days: list[DayCount]) -> bytes:
    """Bars of accepted answers per day and a line of the share of control questions answered
    right on the days that had some."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI)
    FigureCanvasAgg(figure)
    answers_axis = figure.add_subplot()
    positions = list(range(len(days)))
    answers_axis.bar(positions, [d.answers for d in days], color="#4C72B0", label="answers")
    answers_axis.set_ylabel(texts.CHART_ME_ANSWERS)
    answers_axis.set_xticks(positions, [f"{d.day:%d.%m}" for d in days], rotation=45)
    answers_axis.set_ylim(bottom=0)
    accuracy_axis = answers_axis.twinx()
    graded = [(i, d) for i, d in zip(positions, days, strict=True) if d.gold_answers]
    accuracy_axis.plot(
        [i for i, _ in graded],
        [100 * d.gold_correct / d.gold_answers for _, d in graded],
        color="#DD8452",
        marker="o",
    )
    accuracy_axis.set_ylim(0, 105)
    accuracy_axis.set_ylabel(texts.CHART_ME_ACCURACY)
    answers_axis.set_title(texts.CHART_ME_TITLE.format(days=len(days)))
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
