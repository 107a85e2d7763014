"""Long-lived services the handlers reach through ``context.bot_data`` (typed, no globals)."""

from __future__ import annotations

from telegram.ext import Application, CallbackContext, JobQueue

from handlers.broadcasts import Broadcaster
from handlers.labeling_bot import LabelingBot
from storage.store import LabelStore


class Services:
    """Created empty by PTB's ContextTypes; ``post_init`` opens them, ``post_shutdown`` closes."""

    def __init__(self) -> None:
        self._store: LabelStore | None = None
        self.coordinators: frozenset[int] = frozenset()
        # Tells workers about published sets (handlers/broadcasts.py); None until post_init.
        self.broadcaster: Broadcaster | None = None

    def open(self, store: LabelStore, *, coordinators: frozenset[int]) -> None:
        self._store = store
        self.coordinators = coordinators

    @property
    def store(self) -> LabelStore:
        if self._store is None:
            raise RuntimeError("the storage service is opened in post_init; it is not open")
        return self._store

    async def close(self) -> None:
        """Close what ``open`` opened; nothing when start-up failed before it."""
        broadcaster, self.broadcaster = self.broadcaster, None
        if broadcaster is not None:  # it finishes its send in progress, then the store closes
            await broadcaster.stop()
        store, self._store = self._store, None
        if store is not None:
            await store.close()


class Context(CallbackContext[LabelingBot, dict[object, object], dict[object, object], Services]):
    """The context every handler gets: ``context.bot`` is the LabelingBot and
    ``context.bot_data`` the typed services."""


LabelBotApp = Application[
    LabelingBot, Context, dict[object, object], dict[object, object], Services, JobQueue[Context]
]
