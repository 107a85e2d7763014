"""Running the labelbot of a source tree as a user runs it, for the whole-process benchmarks
(export.py, load_taskset.py): a commit's tree checked out beside this one, byte-compiled as an
install is, and one child process timed with its CPU and peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "storage", "tasksets")
# Set in the development environment; an installed labelbot runs with its bytecode.
NO_BYTECODE = "PYTHONDONTWRITEBYTECODE"


@dataclass(frozen=True)
class Child:
    wall: float  # seconds
    cpu: float  # utime + stime, seconds
    rss_mb: float  # peak
    code: int
    stderr: str


def tree_at(revision: str, folder: Path) -> Path:
    """The files of ``revision`` (``git archive``) in ``folder``, a new directory."""
    folder.mkdir()
    archive = subprocess.run(
        ["git", "archive", revision], cwd=ROOT, check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def byte_compile(tree: Path) -> None:
    """Compile a tree's modules once, as pip does on install, so no timed child pays for it."""
    packages = [str(tree / name) for name in PACKAGES]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True)


def run_in(tree: Path, command: list[str]) -> Child:
    """Run ``command`` in ``tree`` with the tree on PYTHONPATH and its bytecode allowed."""
    env = {name: value for name, value in os.environ.items() if name != NO_BYTECODE}
    env["PYTHONPATH"] = str(tree)
    start = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert child.stderr is not None
    stderr = child.stderr.read().decode()  # small: errors only
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    return Child(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        os.waitstatus_to_exitcode(status),
        stderr,
    )
