"""A process under test whose stderr is read line by line as it comes, so a test can act on what
the process says (a log line marks the state it is in) instead of guessing with sleeps."""

from __future__ import annotations

import asyncio
import signal
import sys

# Only a safety net: on a loaded machine a cold start of Python and the bot can take a minute.
SAFETY_TIMEOUT = 180.0


class Watched:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._new_line = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *command: str, env: dict[str, str] | None = None) -> Watched:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        return cls(process)

    @classmethod
    async def labelbot(cls, *args: str, env: dict[str, str] | None = None) -> Watched:
        return await cls.start(sys.executable, "-m", "bot.cli", *args, env=env)

    @property
    def output(self) -> str:
        """Everything it wrote so far, stdout and stderr interleaved."""
        return "".join(self.lines)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode())
            self._new_line.set()

    async def wait_for(self, fragment: str, count: int = 1) -> None:
        """Until ``count`` lines hold ``fragment``."""
        try:
            async with asyncio.timeout(SAFETY_TIMEOUT):
                while sum(fragment in line for line in self.lines) < count:
                    self._new_line.clear()
                    await self._new_line.wait()
        except TimeoutError:
            raise TimeoutError(f"{fragment!r} x{count} not seen; output:\n{self.output}") from None

    async def stop(self) -> int:
        """SIGTERM, then its exit code once it has exited."""
        self.process.send_signal(signal.SIGTERM)
        return await self.exited()

    async def exited(self) -> int:
        """Its exit code once it has exited, with all it wrote read."""
        try:
            code = await asyncio.wait_for(self.process.wait(), SAFETY_TIMEOUT)
        except TimeoutError:
            raise TimeoutError(f"still running; output:\n{self.output}") from None
        # The output ends when the children that inherited it are gone too; a test that finds
        # one alive fails on that, not here.
        await asyncio.wait((self._reader,), timeout=SAFETY_TIMEOUT)
        self._reader.cancel()
        return code
