"""The event loop labelbot runs on: uvloop where it exists, asyncio's own elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] | None
try:
    import uvloop

    LOOP_FACTORY = uvloop.new_event_loop
except ImportError:  # uvloop has no Windows build
    LOOP_FACTORY = None


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop: libuv's loop and transports cost the bot a tenth to a fifth
    less CPU per tap than asyncio's own (benchmarks/RESULTS-answer_loop.md)."""
    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        return runner.run(main)
