"""Waiting for a change of the fake's state without polling it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable


class Signal:
    """Wakes everyone waiting right now; whoever waits later waits for the next fire."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None) -> None:  # noqa: ASYNC109
        """Return on the next fire or after ``timeout`` seconds, whichever comes first."""
        # Not asyncio.wait_for: on Python 3.11 it loses a cancel of the waiting task that
        # arrives as the event fires, and a cancelled simulated worker would go on forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
        """Check ``condition`` now and after every fire; False if it still fails after
        ``timeout`` seconds. Whoever changes what it reads must fire this signal."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await self.wait(remaining)
        return True
