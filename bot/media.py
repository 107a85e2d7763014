"""The files of voice answers, fetched through the Bot API (``labelbot export --media DIR``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from telegram import Bot
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

from bot.settings import Settings
from storage.exports import VoiceAnswer

# Files fetched at the same time: each is a getFile call and a download.
CONCURRENT_DOWNLOADS = 8


@dataclass
class MediaReport:
    downloaded: int = 0
    skipped: int = 0  # already in the folder
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file name, why)


def voice_file_name(answer: VoiceAnswer) -> str:
    """``<item>-<worker>.oga``; an item id is percent-encoded where a file name could not hold
    it (``/`` becomes ``%2F``), so every answer gets its own file inside the folder."""
    return f"{quote(answer.item_id, safe='')}-{answer.worker_id}.oga"


def missing_files(answers: Sequence[VoiceAnswer], folder: Path) -> list[tuple[VoiceAnswer, Path]]:
    """The answers whose file is not in ``folder`` yet, each with its path (folder created)."""
    folder.mkdir(parents=True, exist_ok=True)
    targets = ((answer, folder / voice_file_name(answer)) for answer in answers)
    return [(answer, target) for answer, target in targets if not target.exists()]


async def download_voice_files(
    answers: Sequence[VoiceAnswer], folder: Path, settings: Settings, console: Console
) -> MediaReport:
    """Fetch each answer's file into ``folder`` (getFile, then the download), skipping the files
    that are there already. A file that fails is reported on ``console`` and the rest go on.

    A download is written beside its name and renamed when complete, so a file in the folder is
    always whole, and an interrupted run picks up where it stopped.
    """
    waiting = await asyncio.to_thread(missing_files, answers, folder)
    report = MediaReport(skipped=len(answers) - len(waiting))
    bot = Bot(
        settings.token(),
        base_url=settings.telegram_base_url,
        base_file_url=settings.telegram_base_file_url,
        request=HTTPXRequest(connection_pool_size=CONCURRENT_DOWNLOADS),
    )
    slots = asyncio.Semaphore(CONCURRENT_DOWNLOADS)
    progress = Progress(
        TextColumn("voice answers"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )

    async def fetch(answer: VoiceAnswer, target: Path) -> None:
        async with slots:
            try:
                telegram_file = await bot.get_file(answer.file_id)
                partial = target.with_name(target.name + ".partial")
                await telegram_file.download_to_drive(partial)
                await asyncio.to_thread(partial.replace, target)
                report.downloaded += 1
            except (TelegramError, OSError) as error:
                report.failed.append((target.name, str(error)))
                progress.console.print(
                    f"labelbot: {target.name}: {error}", markup=False, soft_wrap=True
                )
            finally:
                progress.advance(task)

    with progress:
        task = progress.add_task("download", total=len(answers), completed=report.skipped)
        if waiting:
            # Opening the bot checks the token (getMe): a rejected one raises InvalidToken here,
            # before any file, instead of once per file.
            async with bot:
                await asyncio.gather(*(fetch(answer, target) for answer, target in waiting))
    return report
