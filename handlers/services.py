"""Long-lived services the handlers reach through ``context.bot_data`` (typed, no globals)."""

from __future__ import annotations

from telegram.ext import CallbackContext

from handlers.labeling_bot import LabelingBot
from storage.store import LabelStore


class Services:
    """Created empty by PTB's ContextTypes and filled in ``post_init``."""

    store: LabelStore
    coordinators: frozenset[int] = frozenset()


Context = CallbackContext[LabelingBot, dict[object, object], dict[object, object], Services]
