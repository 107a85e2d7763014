"""labelbot's processes run on uvloop, and the SQLite path needs no PostgreSQL driver."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from bot import event_loop


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop has no Windows build")
def test_processes_run_on_uvloop() -> None:
    assert event_loop.run(loop_module()).startswith("uvloop")


def test_sqlite_needs_no_asyncpg(tmp_path: object) -> None:
    """asyncpg comes with the ``postgres`` extra: without it, labelbot still labels on SQLite."""
    script = f"""
import asyncio, sys
sys.modules["asyncpg"] = None  # as if the postgres extra were not installed
from bot.app import build_application
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.store import LabelStore
from tests.test_store import join, make_spec, serve

async def main():
    engine = create_engine("sqlite+aiosqlite:///{tmp_path}/plain.db")
    await upgrade(engine)
    store = LabelStore(engine)
    await store.load_taskset(make_spec(items=2, overlap=1))
    await join(store, 1)
    item = await serve(store, 1)
    print(type(await store.record_answer(item.token, 1, 0)).__name__)
    await store.close()

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Recorded"
