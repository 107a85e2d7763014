"""The coordinator's progress chart as a PNG: answers per hour and completion over time.

matplotlib draws on its Agg canvas with a ``Figure`` of its own (no pyplot, no global state),
so it is safe to run in a worker thread: the handler calls ``progress_chart`` through
``asyncio.to_thread`` and the event loop keeps answering taps meanwhile. matplotlib is imported
on first use, so a bot that never draws never pays for the import.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

from handlers import texts

HOUR = timedelta(hours=1)


def hourly_series(
    hourly: list[tuple[datetime, int]],
) -> tuple[list[datetime], list[int]]:
    """Every hour from the first to the last answer, with 0 for an hour without answers."""
    if not hourly:
        return [], []
    counts = dict(hourly)
    hours, values = [], []
    hour = hourly[0][0]
    while hour <= hourly[-1][0]:
        hours.append(hour)
        values.append(counts.get(hour, 0))
        hour += HOUR
    return hours, values


def progress_chart(hourly: list[tuple[datetime, int]], needed: int, title: str) -> bytes:
    """Bars of answers per hour and a line of the share of wanted answers received so far."""
    from matplotlib import dates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hours, values = hourly_series(hourly)
    figure = Figure(figsize=(8, 4.5), dpi=100)
    canvas = FigureCanvasAgg(figure)
    answers = figure.add_subplot()
    answers.set_title(texts.CHART_TITLE.format(title=title))
    answers.set_xlabel(texts.CHART_TIME)
    answers.set_ylabel(texts.CHART_ANSWERS)
    completion = answers.twinx()
    completion.set_ylabel(texts.CHART_COMPLETION)
    completion.set_ylim(0, 100)
    if hours:
        starts = dates.date2num(hours)
        answers.bar(starts, values, width=0.8 / 24, align="edge", color="#4c78a8")
        done, cumulative = 0, []
        for value in values:
            done += value
            cumulative.append(min(100.0, 100.0 * done / needed) if needed else 0.0)
        # The share at the end of each hour, from 0 at the start of the first.
        ends = [starts[0], *(starts + 1 / 24)]
        completion.plot(ends, [0.0, *cumulative], color="#f58518", marker=".")
        locator = dates.AutoDateLocator(minticks=3, maxticks=8)
        answers.xaxis.set_major_locator(locator)
        answers.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
    figure.tight_layout()
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()
