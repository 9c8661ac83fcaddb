"""The `corpus` command: parses arguments, calls the library, maps outcomes to exit statuses.

Exit statuses: 0 clean, 1 some records rejected (the rest loaded), 2 usage or database error.
"""

import gc
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, BinaryIO

import orjson
import typer
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app.db import make_engine, migrate
from app.ingest.fields import FieldMap
from app.ingest.pipeline import DEFAULT_BATCH_SIZE, ingest
from app.ingest.progress import Progress
from app.ingest.records import Reject
from app.queries.articles import ArticleFilter
from app.queries.export import Format, export_chunks
from app.settings import Settings

EXIT_REJECTS = 1
EXIT_FATAL = 2

cli = typer.Typer(
    name="corpus",
    help="Load news articles into a database and serve them over HTTP.",
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL; overrides DATABASE_URL. Default: sqlite:///data/corpus.db",
        show_default=False,
    ),
]


def _settings(database_url: str | None) -> Settings:
    return Settings(database_url=database_url) if database_url else Settings()


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_FATAL)


def _db_error(exc: SQLAlchemyError) -> str:
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(exc).__name__
    if "no such table" in text or ("does not exist" in text and "relation" in text):
        return f"{text} (has the database been migrated? run `corpus migrate`)"
    return f"database error: {text}"


@cli.command("migrate")
def migrate_command(database_url: DatabaseUrl = None) -> None:
    """Bring the database schema to the newest revision."""
    settings = _settings(database_url)
    try:
        migrate(settings.database_url)
    except SQLAlchemyError as exc:
        raise _fail(_db_error(exc)) from None
    typer.echo("database is at the newest revision", err=True)


class _RejectsFile:
    """`--rejects FILE`: each rejected record as a JSON line a user can fix and re-ingest."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("wb")

    def write(self, reject: Reject) -> None:
        entry: dict[str, object] = {"file": reject.path, "line": reject.line}
        if reject.index is not None:
            entry["index"] = reject.index
        entry |= {"reason": reject.reason, "raw": reject.raw}
        self.file.write(orjson.dumps(entry) + b"\n")

    def close(self) -> None:
        self.file.close()


def _field_map(specs: list[str]) -> FieldMap:
    try:
        return FieldMap.parse(specs)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--map") from None


def _quiet_driver_logs() -> None:
    """After a lost connection psycopg logs its failed cleanup to stderr; our one-line error
    already says what happened, so keep stderr to that line."""
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    logging.getLogger("psycopg").propagate = False


@cli.command("ingest")
def ingest_command(
    paths: Annotated[
        list[Path],
        typer.Argument(exists=True, readable=True, help="Files or directories to load."),
    ],
    database_url: DatabaseUrl = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Records per transaction.")
    ] = DEFAULT_BATCH_SIZE,
    sources: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="JSON map of source id to name."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Validate and count everything; write nothing."),
    ] = False,
    rejects: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="Write each rejected record here as a JSON line: file, line, reason, raw.",
        ),
    ] = None,
    field_map: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="FROM=TO",
            help="Rename a field, e.g. --map id=article_id --map publication=source_id "
            "(a source given by name is looked up, or created). Repeatable.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Load article records (JSON, JSON arrays, JSON Lines, CSV, gzipped, double-encoded).

    Shows progress on stderr (a bar on a terminal, a line every 10 s otherwise).
    """
    _quiet_driver_logs()
    mapping = _field_map(field_map or [])
    settings = _settings(database_url)
    progress = None if quiet else Progress(sys.stderr, tty=sys.stderr.isatty())
    try:
        rejects_file = _RejectsFile(rejects) if rejects else None
    except OSError as exc:
        raise _fail(f"cannot write rejects file: {exc}") from None

    def report(reject: Reject) -> None:
        if progress is not None:
            progress.message(str(reject))
        else:
            typer.echo(str(reject), err=True)
        if rejects_file is not None:
            rejects_file.write(reject)

    def phase(text: str) -> None:
        if progress is not None:
            progress.phase(text)

    # The API's statement timeout guards requests; a bulk load must not be cut short by it.
    engine = make_engine(settings.model_copy(update={"statement_timeout_ms": 0}), pooled=False)
    # Everything imported so far lives as long as the process: keep it out of the cyclic
    # GC's full passes, which a load of millions of short-lived records triggers often.
    gc.freeze()
    try:
        summary = ingest(
            paths,
            engine,
            batch_size=batch_size,
            on_reject=report,
            sources=sources,
            dry_run=dry_run,
            field_map=mapping,
            on_progress=progress.update if progress is not None else _no_progress,
            on_phase=phase,
        )
    except SQLAlchemyError as exc:
        raise _fail(_db_error(exc)) from None
    except ChildProcessError as exc:  # the reader process failed (app/ingest/prefetch.py)
        raise _fail(str(exc)) from None
    except OSError as exc:  # the rejects file's disk filled up, or similar
        raise _fail(f"{exc.strerror or exc}: {exc.filename or 'output'}") from None
    finally:
        engine.dispose()
        if progress is not None:
            progress.close()
        if rejects_file is not None:
            rejects_file.close()
    s = summary.as_dict()
    if as_json:
        sys.stdout.write(orjson.dumps(s).decode() + "\n")
    else:
        typer.echo(
            f"{'dry run: would have ' if dry_run else ''}read {s['read']}, "
            f"inserted {s['inserted']}, updated {s['updated']}, "
            f"unchanged {s['unchanged']}, rejected {s['rejected']} "
            f"in {s['seconds']}s ({s['records_per_second']} records/s)",
            err=True,
        )
    if summary.rejected:
        raise typer.Exit(EXIT_REJECTS)


def _no_progress(_: object) -> None:
    pass


@cli.command("export")
def export_command(
    database_url: DatabaseUrl = None,
    source_id: Annotated[
        list[int] | None,
        typer.Option("--source-id", min=1, help="Only these sources. Repeatable."),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="jsonl or csv.")] = Format.JSONL,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", dir_okay=False, help="File to write; stdout if omitted."),
    ] = None,
) -> None:
    """Stream the corpus (or some sources) out as ingestible records, in article_id order."""
    settings = _settings(database_url)
    engine = make_engine(settings.model_copy(update={"statement_timeout_ms": 0}), pooled=False)
    flt = ArticleFilter(source_ids=tuple(source_id or ()))
    try:
        with output.open("wb") if output else _stdout() as out:
            for chunk in export_chunks(engine, flt, fmt):
                out.write(chunk)
    except SQLAlchemyError as exc:
        raise _fail(_db_error(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write export: {exc.strerror or exc}") from None
    finally:
        engine.dispose()


@contextmanager
def _stdout() -> Iterator[BinaryIO]:
    yield sys.stdout.buffer
    sys.stdout.buffer.flush()


# asyncio's loop, not uvloop: uvloop's libuv accepts one connection per loop iteration
# (libuv/libuv#3696), so under load a burst of new connections waits seconds to be accepted,
# before the load-shedding gate can bound its wait; asyncio accepts every pending one.
SERVER_LOOP = "asyncio"


@cli.command("serve")
def serve_command(
    database_url: DatabaseUrl = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log each request.")] = True,
) -> None:
    """Serve the API with uvicorn (docs at /docs)."""
    import uvicorn

    settings = _settings(database_url)
    # Workers are fresh processes that build Settings from the environment.
    os.environ["CORPUS_DATABASE_URL"] = settings.database_url
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop=SERVER_LOOP,
        access_log=access_log,
        proxy_headers=True,
        server_header=False,
    )


@cli.command("synth")
def synth_command(
    count: Annotated[int, typer.Argument(min=0, help="How many articles to write.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="JSON Lines file (.gz ok).")],
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same corpus.")] = 0,
    first_id: Annotated[int, typer.Option(min=1, help="article_id of the first record.")] = 1,
) -> None:
    """Write a reproducible synthetic corpus (Zipf words, 20 sources, 1.5-4.5 KB bodies)."""
    from app import synth

    written = synth.write(output, count, seed=seed, first_id=first_id)
    typer.echo(f"wrote {count} articles ({written / 1e6:.1f} MB) to {output}", err=True)


def main() -> None:
    cli()
