"""``labelbot run --workers N``'s supervisor as a real process, stopped by SIGTERM at each point
of its life: every child is gone when it exits, and it exits 0.

The children are a tiny script instead of labelbot, so each phase can be held on purpose: one
that runs until signalled, one that ignores SIGTERM, one that crashes the first time it runs (the
supervisor backs off, then restarts it), one that refuses its settings (exit code 2).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from tests.watched import Watched

CHILD = r"""
import os, pathlib, signal, sys, time
mode, crashed = sys.argv[1], pathlib.Path(sys.argv[2])
if mode == "crash-once" and not crashed.exists():
    crashed.touch()
    sys.exit(1)
if mode == "refuse":
    sys.exit(2)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.write(2, b"child ready\n")  # one write: print's two would interleave with a sibling's
while True:
    time.sleep(3600)
"""

SUPERVISOR = """
import logging, sys
from bot.serve import supervise
logging.basicConfig(level=logging.INFO, format="%(message)s")
workers, grace, *command = sys.argv[1:]
sys.exit(supervise(int(workers), command, grace=float(grace)))
"""

# Longer than any test waits: a child gone before it passed was stopped by SIGTERM, not SIGKILL.
LONG_GRACE = 600.0


async def start_supervisor(
    mode: str, workdir: Path, *, workers: int = 2, grace: float = LONG_GRACE
) -> Watched:
    child = [sys.executable, "-c", CHILD, mode, str(workdir / "crashed")]
    return await Watched.start(sys.executable, "-c", SUPERVISOR, str(workers), str(grace), *child)


def child_pids(supervisor: Watched) -> set[int]:
    return {
        int(match[1])
        for line in supervisor.lines
        if (match := re.match(r"process (\d+) started", line))
    }


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_sigterm_while_starting_stops_every_child(tmp_path: Path) -> None:
    supervisor = await start_supervisor("serve", tmp_path)
    await supervisor.wait_for("starting 2 webhook processes")

    assert await supervisor.stop() == 0
    assert [pid for pid in child_pids(supervisor) if alive(pid)] == []


async def test_sigterm_while_running_stops_every_child(tmp_path: Path) -> None:
    supervisor = await start_supervisor("serve", tmp_path)
    await supervisor.wait_for("child ready", count=2)
    pids = child_pids(supervisor)
    assert len(pids) == 2 and all(alive(pid) for pid in pids)

    assert await supervisor.stop() == 0
    assert [pid for pid in pids if alive(pid)] == []


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path,
) -> None:
    supervisor = await start_supervisor("stubborn", tmp_path, grace=1.0)
    await supervisor.wait_for("child ready", count=2)

    assert await supervisor.stop() == 0
    assert [pid for pid in child_pids(supervisor) if alive(pid)] == []
    assert any("ignored SIGTERM" in line for line in supervisor.lines)


async def test_sigterm_during_the_restart_back_off_leaves_no_child(
    tmp_path: Path,
) -> None:
    supervisor = await start_supervisor("crash-once", tmp_path, workers=1)
    await supervisor.wait_for("restarting in")

    assert await supervisor.stop() == 0
    assert [pid for pid in child_pids(supervisor) if alive(pid)] == []


async def test_sigterm_right_after_a_restart_stops_the_new_child(tmp_path: Path) -> None:
    supervisor = await start_supervisor("crash-once", tmp_path, workers=1)
    await supervisor.wait_for("started", count=2)  # the restart

    assert await supervisor.stop() == 0
    assert [pid for pid in child_pids(supervisor) if alive(pid)] == []


async def test_a_child_refusing_its_settings_stops_all_with_exit_code_2(tmp_path: Path) -> None:
    supervisor = await start_supervisor("refuse", tmp_path)

    assert await supervisor.exited() == 2
    assert [pid for pid in child_pids(supervisor) if alive(pid)] == []
    assert not any("restarting" in line for line in supervisor.lines)
