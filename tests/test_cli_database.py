"""An unreachable database is one clear line, never a driver's traceback: at once for the
commands, after retries with back-off for ``labelbot run`` (its database may still be
starting), and Ctrl-C while it waits stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import labelbot


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("command", ["tasksets", "db upgrade", "load ITEMS --labels a,b"])
def test_a_command_says_in_one_line_that_the_database_is_unreachable(
    tmp_path: Path, command: str
) -> None:
    url = f"postgresql+asyncpg://labelbot:s3cret@127.0.0.1:{closed_port()}/labels"
    items = tmp_path / "items.csv"
    items.write_text("id,text\nt1,hello\n")

    result = labelbot("--database-url", url, *command.replace("ITEMS", str(items)).split())

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"labelbot: cannot open the database {url.replace('s3cret', '***')}: Connection refused"
    ]
    assert result.stdout == ""


def test_a_sqlite_file_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'labels.db'}"

    result = labelbot("--database-url", url, "tasksets")

    assert (result.returncode, result.stderr.strip()) == (
        1,
        f"labelbot: cannot open the database {url}: unable to open database file",
    )


def test_run_waits_for_the_database_and_ctrl_c_stops_it_quietly() -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/labels"
    env = {**os.environ, "LABELBOT_BOT_TOKEN": "123456:TEST-token", "LABELBOT_DATABASE_URL": url}
    child = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    try:
        first = child.stderr.readline()
        second = child.stderr.readline()  # a second attempt: it retries, it does not give up
        child.send_signal(signal.SIGINT)
        rest = child.stderr.read()
        code = child.wait(timeout=30)
    finally:
        child.kill()
    for line in (first, second):
        assert "cannot open the database" in line and "Connection refused; retrying in" in line
    assert (code, rest.strip()) == (130, "labelbot: interrupted")
    assert "Traceback" not in first + second + rest
