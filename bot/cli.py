"""The ``labelbot`` command line (README, "Command line", is its contract)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import logging
import math
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot import money_cli

# Only what the parser needs is imported here; each command imports its own heavy modules
# (telegram, SQLAlchemy, numpy), so `--help` and `aggregate` start without them.
if TYPE_CHECKING:
    from pydantic import SecretStr, ValidationError
    from sqlalchemy.ext.asyncio import AsyncEngine

    from bot.settings import Settings
    from storage.exports import VoiceAnswer
    from storage.store import LabelStore

EXIT_INVALID = 2
EXIT_UNAVAILABLE = 1  # the database cannot be reached
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it
# ``labelbot run`` waits this long for a database that is still starting (about a minute).
DATABASE_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0)
log = logging.getLogger("labelbot")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.handler is cmd_aggregate:  # files in, CSV out: no settings, no pydantic to import
        command = functools.partial(cmd_aggregate, args)
    else:
        from pydantic import ValidationError

        from bot.settings import Settings

        try:
            settings = Settings()
        except ValidationError as error:
            for problem in settings_problems(error):
                print(f"labelbot: invalid settings: {problem}", file=sys.stderr)
            return EXIT_INVALID
        configure_logging(args.verbose, settings.bot_token)
        if args.database_url:
            settings = settings.model_copy(update={"database_url": args.database_url})
        handler: Callable[[argparse.Namespace, Settings], int] = args.handler
        command = functools.partial(handler, args, settings)
    try:
        return command()
    except KeyboardInterrupt:  # Ctrl-C: a line, not a traceback
        print("labelbot: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def settings_problems(error: ValidationError) -> list[str]:
    """One line per problem, naming the variable but never its value, which may be a secret."""
    problems = []
    for problem in error.errors(include_url=False, include_input=False):
        if problem["type"] == "value_error":  # labelbot's own checks name the variable
            problems.append(str(problem["ctx"]["error"]))
        else:
            variable = "LABELBOT_" + "_".join(map(str, problem["loc"])).upper()
            problems.append(f"{variable}: {problem['msg']}")
    return problems


class RedactingFormatter(logging.Formatter):
    """Writes ``[LABELBOT_BOT_TOKEN]`` where a log line would hold the token: Bot API URLs
    contain it, and PTB logs its URL at debug level and repeats a rejected token."""

    def __init__(self, fmt: str, secret: str) -> None:
        super().__init__(fmt)
        self.secret = secret

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace(self.secret, "[LABELBOT_BOT_TOKEN]")


def configure_logging(verbose: bool, token: SecretStr | None = None) -> None:
    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter(log_format, token.get_secret_value())
        if token is not None
        else logging.Formatter(log_format)
    )
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    # httpx logs a line per request, the scheduler one per job run.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if not verbose:  # a command's output, not Alembic's chatter; `db upgrade` turns it back on
        logging.getLogger("alembic").setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labelbot", description=__doc__)
    parser.add_argument("--database-url", help="overrides LABELBOT_DATABASE_URL")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="migrate the database and start the bot")
    run.add_argument(
        "--workers", type=int, default=1, help="webhook processes sharing the port (webhook mode)"
    )
    # Used by the supervisor for its children: the parent has migrated already.
    run.add_argument("--no-migrate", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser(
        "demo", help="the whole loop offline: fake Telegram, simulated crowd"
    )
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="results folder")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument(
        "--scenario",
        choices=("labels", "transcription", "review"),
        default="labels",
        help="labels: tweets labeled by tapping (default); transcription: clips typed out; "
        "review: the labels with a review stream",
    )
    demo.set_defaults(handler=cmd_demo)

    load = commands.add_parser("load", help="validate and load a task set (JSON, JSONL or CSV)")
    load.add_argument("file", type=Path)
    load.add_argument("--name")
    load.add_argument("--labels", help="comma-separated label values")
    load.add_argument("--overlap", type=int)
    load.add_argument(
        "--answer",
        choices=("labels", "text", "voice", "text_or_voice"),
        help="what workers answer with (a CSV set's spec comes from these flags)",
    )
    load.add_argument("--reward", help="decimal reward per answer, e.g. 0.02")
    load.add_argument(
        "--draft",
        action="store_true",
        help="load as a draft: served to nobody until a coordinator publishes it (/tasksets)",
    )
    load.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="count the items stored on stderr (default: when stderr is a terminal)",
    )
    load.set_defaults(handler=cmd_load)

    listing = commands.add_parser("tasksets", help="list task sets with progress")
    listing.set_defaults(handler=cmd_tasksets)

    export = commands.add_parser("export", help="write results of a task set")
    export.add_argument("name")
    export.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    export.add_argument("--out", type=Path, help="file to write (default: stdout)")
    export.add_argument(
        "--method",
        choices=["mv", "wawa", "ds"],
        default="mv",
        help="aggregation of a label set (a text set uses its own `aggregate`)",
    )
    export.add_argument("--raw", action="store_true", help="one row per answer")
    export.add_argument(
        "--media",
        type=Path,
        metavar="DIR",
        help="also download every voice answer's file into DIR as <item>-<worker>.oga",
    )
    export.set_defaults(handler=cmd_export)

    agg = commands.add_parser("aggregate", help="aggregate a CSV of item,worker,label offline")
    agg.add_argument("answers", type=Path)
    agg.add_argument("--method", choices=["mv", "wawa", "ds"], default="ds")
    agg.add_argument("--gold", type=Path, help="CSV of item,truth; prints accuracy")
    agg.set_defaults(handler=cmd_aggregate)

    reviews = commands.add_parser(
        "reviews", help="a task set's review stream: waiting, done, acceptance, agreement"
    )
    reviews.add_argument("name")
    reviews.set_defaults(handler=cmd_reviews)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="run migrations to head").set_defaults(
        handler=cmd_db_upgrade
    )

    workers = commands.add_parser("workers", help="manage workers")
    worker_commands = workers.add_subparsers(dest="workers_command", required=True)
    listing_workers = worker_commands.add_parser(
        "list", help="workers of a task set with their scores and standing"
    )
    listing_workers.add_argument("taskset")
    listing_workers.set_defaults(handler=cmd_workers)
    reinstate = worker_commands.add_parser("reinstate", help="lift a suspension")
    reinstate.add_argument("worker_id", type=int)
    reinstate.add_argument("--taskset", help="only in this task set")
    reinstate.set_defaults(handler=cmd_reinstate)
    money_cli.add_commands(commands)  # payouts, bonuses
    return parser


def with_engine(
    settings: Settings, work: Callable[[AsyncEngine], Awaitable[int]], *, wait: bool = False
) -> int:
    """Run ``work`` against a migrated database and dispose of the engine afterwards.

    An unreachable database is one line on stderr and exit code 1; with ``wait`` (``run``, whose
    database may still be starting) it is first retried with back-off, a log line each time.
    """
    import asyncio  # here, not at the top: --help and aggregate start without it

    from bot import event_loop
    from storage.engine import DatabaseUnavailable, create_engine, ensure_reachable
    from storage.migrate import upgrade

    async def reach(engine: AsyncEngine) -> None:
        for delay in (*DATABASE_RETRY_SECONDS, None) if wait else (None,):
            try:
                await ensure_reachable(engine)
                return
            except DatabaseUnavailable as error:
                if delay is None:
                    raise
                log.warning("%s; retrying in %.0f s", error, delay)
                await asyncio.sleep(delay)

    async def runner() -> int:
        engine = create_engine(settings.database_url)
        try:
            try:
                await reach(engine)
            except DatabaseUnavailable as error:
                print(f"labelbot: {error}", file=sys.stderr)
                return EXIT_UNAVAILABLE
            await upgrade(engine)
            return await work(engine)
        finally:
            await engine.dispose()

    return event_loop.run(runner())


def freeze_startup_objects() -> None:
    """For a bulk command (load, export), once started: what is alive now lives until the
    process ends, and frozen, the collector stops walking it each time the command's own
    objects fill a generation (a sixth of the CPU of loading 100,000 items). Not for ``run``,
    whose garbage of start-up would never be collected."""
    gc.freeze()


def with_store(
    settings: Settings, work: Callable[[LabelStore], Awaitable[int]], *, wait: bool = False
) -> int:
    """`with_engine` for the commands that use the whole storage service."""

    async def on_store(engine: AsyncEngine) -> int:
        from storage.store import LabelStore

        store = LabelStore(engine)
        try:
            return await work(store)
        finally:
            await store.close()

    return with_engine(settings, on_store, wait=wait)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from telegram.error import InvalidToken

    from bot import event_loop
    from bot.serve import serve, supervise

    try:
        settings.token()
    except ValueError as error:
        print(f"labelbot: {error}", file=sys.stderr)
        return EXIT_INVALID
    if args.workers > 1 and not settings.webhook_url:
        print(
            "labelbot: --workers needs webhook mode (LABELBOT_WEBHOOK_URL): "
            "Telegram allows one long-polling process per bot",
            file=sys.stderr,
        )
        return EXIT_INVALID
    if not args.no_migrate and with_engine(settings, migrated, wait=True) == EXIT_UNAVAILABLE:
        return EXIT_UNAVAILABLE
    if args.workers > 1:
        child = [sys.executable, "-m", "bot.cli", *(["-v"] if args.verbose else [])]
        return supervise(
            args.workers,
            [*child, "run", "--no-migrate", "--reuse-port"],
            # The environment, not the command line, so a password in the URL stays out of ps.
            env={**os.environ, "LABELBOT_DATABASE_URL": settings.database_url},
        )
    try:
        event_loop.run(serve(settings, reuse_port=args.reuse_port))
    except InvalidToken:  # its message repeats the token: never print it
        print(
            "labelbot: the Bot API rejected LABELBOT_BOT_TOKEN: copy the token from @BotFather",
            file=sys.stderr,
        )
        return EXIT_INVALID
    return 0


async def migrated(_engine: AsyncEngine) -> int:
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.demo import run_demo

    if not args.verbose:  # the demo prints its own story; library chatter would drown it
        logging.getLogger().setLevel(logging.WARNING)
    return run_demo(
        args.out, seed=args.seed, database_url=args.database_url, scenario=args.scenario
    )


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    # Not the whole LabelStore: the models and the loader are all a load needs.
    from storage.engine import session_factory
    from storage.loading import TaskSetExists, store_taskset
    from storage.models import TaskSetStatus
    from tasksets.money import format_money
    from tasksets.parsing import SpecOverrides, TaskSetError, TaskSetStream, open_taskset

    overrides = SpecOverrides(
        name=args.name,
        labels=[part.strip() for part in args.labels.split(",")] if args.labels else None,
        overlap=args.overlap,
        answer=args.answer,
        reward=args.reward,
    )

    async def load(taskset: TaskSetStream, engine: AsyncEngine) -> int:
        freeze_startup_objects()
        spec = taskset.header
        shown = args.progress if args.progress is not None else sys.stderr.isatty()
        try:
            with load_progress(spec.name, shown) as on_progress:
                await store_taskset(
                    session_factory(engine),
                    taskset,
                    now=datetime.now(UTC),
                    status=TaskSetStatus.DRAFT if args.draft else TaskSetStatus.ACTIVE,
                    on_progress=on_progress,
                )
        except TaskSetExists as error:
            print(f"labelbot: {error}; choose another --name", file=sys.stderr)
            return EXIT_INVALID
        print(
            f"loaded {spec.name!r}: {taskset.count} items ({taskset.gold_items} gold), "
            + (
                f"labels {', '.join(spec.label_values)}"
                if spec.answer == "labels"
                else f"{spec.answer.replace('_', ' ')} answers"
            )
            + f", overlap {spec.overlap.min}"
            + (f"-{spec.overlap.max}" if spec.overlap.max != spec.overlap.min else "")
            + f", reward {format_money(spec.reward_minor, spec.currency)}"
            + (" as a draft: publish it in the chat with /tasksets" if args.draft else "")
        )
        return 0

    # The file is read while it is stored (memory holds a chunk of items, not the set): a
    # problem found on the way rolls the transaction back and is reported like one found first.
    try:
        with open_taskset(args.file, overrides) as taskset:
            return with_engine(settings, functools.partial(load, taskset))
    except TaskSetError as error:
        print(f"labelbot: {args.file} is not a valid task set:\n{error}", file=sys.stderr)
        return EXIT_INVALID


@contextlib.contextmanager
def load_progress(name: str, shown: bool) -> Iterator[Callable[[int], None] | None]:
    """A live count of the items stored, on stderr; None when not `shown`."""
    if not shown:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("loading {task.description}: {task.completed:,} items"))
    with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True)) as progress:
        task = progress.add_task(name, total=None)
        yield lambda stored: progress.update(task, completed=stored)


def cmd_tasksets(args: argparse.Namespace, settings: Settings) -> int:
    from storage.exports import quality_report

    async def listing(store: LabelStore) -> int:
        rows = await store.taskset_progress()
        if not rows:
            print("no task sets yet: load one with `labelbot load FILE`")
            return 0
        print(
            f"{'name':<24} {'status':<8} {'done/items':>12} {'answers':>8} {'gold acc':>9} "
            f"{'alpha':>6}"
        )
        for row in rows:
            regular = row.items - row.gold_items
            accuracy = f"{row.gold_accuracy:.1%}" if row.gold_accuracy is not None else "-"
            # Krippendorff's alpha: agreement among the counted answers (nan when undefined).
            alpha = (await quality_report(store, row.taskset_id, "mv")).alpha
            shown = "-" if math.isnan(alpha) else f"{alpha:.2f}"
            print(
                f"{row.name:<24} {row.status:<8} {f'{row.items_done}/{regular}':>12} "
                f"{row.answers:>8} {accuracy:>9} {shown:>6}"
            )
            if row.set_aside:
                refused = await store.items_set_aside(row.taskset_id)
                listed = "; ".join(f"{item} ({reason})" for item, reason in refused[:5])
                more = f"; and {len(refused) - 5} more" if len(refused) > 5 else ""
                print(f"  set aside, Telegram refused to show them: {listed}{more}")
        return 0

    return with_store(settings, listing)


@contextlib.contextmanager
def output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    # Write beside the target and rename, so a failed export never leaves half a file.
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="") as stream:
        yield stream
    partial.replace(path)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from storage.exports import UnknownTaskSet, export_taskset, voice_answers

    if args.media:
        try:
            settings.token()  # before any work: the downloads go through the Bot API
        except ValueError as error:
            print(f"labelbot: --media: {error}", file=sys.stderr)
            return EXIT_INVALID

    async def export(store: LabelStore) -> int:
        freeze_startup_objects()  # 1M raw answers: 20 full collections, 1.1-1.4 s of CPU, spared
        try:
            with output(args.out) as out:
                rows = await export_taskset(
                    store, args.name, out, fmt=args.format, method=args.method, raw=args.raw
                )
            voices = await voice_answers(store, args.name) if args.media else []
        except UnknownTaskSet as error:
            print(f"labelbot: {error}", file=sys.stderr)
            return EXIT_INVALID
        if args.out:
            print(f"wrote {rows} rows to {args.out}", file=sys.stderr)
        return await download_media(voices, args.media, settings) if args.media else 0

    return with_store(settings, export)


async def download_media(voices: Sequence[VoiceAnswer], folder: Path, settings: Settings) -> int:
    """``export --media``: 0 when every voice file is in ``folder``, 1 when some failed."""
    from rich.console import Console
    from telegram.error import InvalidToken

    from bot.media import download_voice_files

    console = Console(stderr=True)
    try:
        report = await download_voice_files(voices, folder, settings, console)
    except InvalidToken:  # its message repeats the token: never print it
        print(
            "labelbot: the Bot API rejected LABELBOT_BOT_TOKEN: copy the token from @BotFather",
            file=sys.stderr,
        )
        return EXIT_INVALID
    console.print(
        f"voice answers in {folder}: {report.downloaded} downloaded, {report.skipped} there "
        f"already, {len(report.failed)} failed",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return 1 if report.failed else 0


def cmd_reviews(args: argparse.Namespace, settings: Settings) -> int:
    async def report(store: LabelStore) -> int:
        taskset_id = await store.taskset_id(args.name)
        if taskset_id is None:
            print(f"labelbot: no task set named {args.name!r}", file=sys.stderr)
            return EXIT_INVALID
        state = await store.reviews.state(taskset_id)
        print(
            f"reviews of {args.name}: {state.waiting} waiting, {state.done} done, "
            f"{state.gold_done} gold reviews done"
        )
        agreement = f"{state.agreement:.0%}" if state.agreement is not None else "-"
        print(
            f"reviewer agreement: {agreement} "
            f"({state.pairs} pair{'s' if state.pairs != 1 else ''} of verdicts on one answer)"
        )
        if state.acceptance:
            print(f"\n{'worker':>12}  {'name':<20} {'reviewed':>8} {'accepted':>8} {'rate':>6}")
            for row in state.acceptance:
                rate = row.accepted / row.reviewed
                print(
                    f"{row.worker_id:>12}  {row.name[:20]:<20} {row.reviewed:>8} "
                    f"{row.accepted:>8} {rate:>6.0%}"
                )
        if state.reviewers:
            print(f"\n{'reviewer':>12}  {'name':<20} {'reviews':>8} {'gold':>8} {'gold acc':>8}")
            for record in state.reviewers:
                score = (
                    f"{record.gold_right / record.gold_reviews:.0%}" if record.gold_reviews else "-"
                )
                print(
                    f"{record.worker_id:>12}  {record.name[:20]:<20} {record.reviews:>8} "
                    f"{record.gold_reviews:>8} {score:>8}"
                )
        return 0

    return with_store(settings, report)


def cmd_aggregate(args: argparse.Namespace) -> int:
    from tasksets.answers_csv import aggregate_csv

    try:
        with contextlib.ExitStack() as files:
            answers = files.enter_context(args.answers.open(encoding="utf-8-sig", newline=""))
            gold = (
                files.enter_context(args.gold.open(encoding="utf-8-sig", newline=""))
                if args.gold
                else None
            )
            accuracy = aggregate_csv(answers, args.method, sys.stdout, gold)
    except (OSError, ValueError) as error:
        print(f"labelbot: {error}", file=sys.stderr)
        return EXIT_INVALID
    if accuracy is not None:
        # After the rows, on stdout as the README has it; without --gold stdout is pure CSV.
        print(f"accuracy on gold items: {accuracy:.4f}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    logging.getLogger("alembic").setLevel(logging.INFO)  # each migration applied is the news
    code = with_engine(settings, migrated)
    if code == 0:
        print("database is at the latest revision")
    return code


def cmd_workers(args: argparse.Namespace, settings: Settings) -> int:
    async def listing(store: LabelStore) -> int:
        taskset_id = await store.taskset_id(args.taskset)
        if taskset_id is None:
            print(f"labelbot: no task set named {args.taskset!r}", file=sys.stderr)
            return EXIT_INVALID
        print(
            f"{'worker':>12} {'name':<20} {'status':<10} {'answers':>7} {'gold':>7} "
            f"{'gold acc':>8} {'median s':>8} {'top label':<16} reason"
        )
        for score in await store.leaderboard(taskset_id):
            total = sum(score.labels.values())
            top = max(score.labels, key=score.labels.__getitem__) if total else "-"
            share = f"{top} {score.labels[top] / total:.0%}" if total else "-"
            median = f"{score.median_seconds:.1f}" if score.median_seconds is not None else "-"
            print(
                f"{score.worker_id:>12} {score.name[:20]:<20} {score.status:<10} "
                f"{score.answers:>7} {f'{score.gold_correct}/{score.gold_answers}':>7} "
                f"{score.gold_accuracy:>8.0%} {median:>8} {share:<16} {score.reason or ''}"
            )
        return 0

    return with_store(settings, listing)


def cmd_reinstate(args: argparse.Namespace, settings: Settings) -> int:
    async def reinstate(store: LabelStore) -> int:
        changed = await store.reinstate(args.worker_id, args.taskset)
        if not changed:
            print(f"labelbot: worker {args.worker_id} is not suspended", file=sys.stderr)
            return 1
        print(f"reinstated worker {args.worker_id} in {changed} task set(s)")
        return 0

    return with_store(settings, reinstate)


if __name__ == "__main__":
    raise SystemExit(main())
