"""Each ``labelbot`` command imports only what it uses: help and ``aggregate`` start without
the bot's heavy libraries (behaviour checked on the imports themselves, not on timings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("telegram", "sqlalchemy", "aiohttp", "alembic", "matplotlib", "asyncio")


def imported_modules(*args: str) -> set[str]:
    """Modules imported by ``python -m bot.cli ARGS``, read from -X importtime."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def imported_packages(*args: str) -> set[str]:
    """Top-level packages imported by ``python -m bot.cli ARGS``."""
    return {module.split(".")[0] for module in imported_modules(*args)}


@pytest.mark.parametrize("args", [("--help",), ("aggregate", "--help")], ids=["help", "agg-help"])
def test_help_imports_no_heavy_library(args: tuple[str, ...]) -> None:
    packages = imported_packages(*args)
    assert "bot" in packages  # the parse did read the import log
    assert packages.isdisjoint(HEAVY), packages & set(HEAVY)


def test_aggregate_imports_no_bot_or_database_library(tmp_path: Path) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text("item,worker,label\na,w1,x\na,w2,x\nb,w1,y\n")

    packages = imported_packages("aggregate", str(answers), "--method", "ds")

    assert "numpy" in packages
    assert packages.isdisjoint(HEAVY), packages & set(HEAVY)
    # It reads no settings, so neither their validation nor pydantic is loaded.
    assert packages.isdisjoint({"pydantic", "pydantic_settings"}), packages


def test_a_database_command_still_imports_its_storage(tmp_path: Path) -> None:
    packages = imported_packages(
        "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "tasksets"
    )

    assert "sqlalchemy" in packages


def test_load_on_a_migrated_database_imports_only_the_loader(tmp_path: Path) -> None:
    """`load` needs the models and the loader: not Alembic once the database is at the newest
    revision, not Telegram, not the rest of the storage service."""
    database = ("--database-url", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    subprocess.run([sys.executable, "-m", "bot.cli", *database, "db", "upgrade"], check=True)
    items = tmp_path / "items.csv"
    items.write_text("id,text\na,hello\n")

    modules = imported_modules(*database, "load", str(items), "--labels", "a,b")

    assert {"storage.loading", "storage.models", "tasksets.parsing"} <= modules
    packages = {module.split(".")[0] for module in modules}
    assert packages.isdisjoint({"alembic", "telegram", "aiohttp", "matplotlib"}), packages
    assert modules.isdisjoint({"storage.store", "storage.labeling", "storage.coordination"})
