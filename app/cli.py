"""The `corpus` command: parses arguments, calls the library, maps outcomes to exit statuses.

Exit statuses: 0 clean, 1 some records rejected (the rest loaded) or some ids to delete or
restore missing (the rest done), 2 usage or any fatal error (one line on stderr, never a
traceback: `fatal_errors`), 141 standard output closed by its reader (`corpus export |
head`), as a process stopped by SIGPIPE.
"""

import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import limits
import orjson
import typer
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlmodel import Session
from typer.core import TyperGroup

from app import meta as corpus_meta
from app import models, takedowns
from app.db import head_revision, make_engine, migrate, schema_revision, sqlite_file
from app.errors import CorpusError
from app.files import open_for_write
from app.ingest.fields import FieldMap
from app.ingest.pipeline import DEFAULT_BATCH_SIZE, Summary, expected_records, ingest
from app.ingest.progress import Progress
from app.ingest.readers import SOURCES_FILE
from app.ingest.records import ArticleIn, Reject
from app.ingest.writer import BatchCounts
from app.queries import keys as key_queries
from app.queries.articles import ArticleFilter
from app.queries.export import Format, export_chunks
from app.search import snapshot, sync, vector_sync
from app.search.index import SearchIndex, index_path
from app.search.vectors import vectors_path
from app.settings import Settings

EXIT_REJECTS = 1
EXIT_FATAL = 2
EXIT_PIPE_CLOSED = 128 + signal.SIGPIPE
STDIN = "-"
STDIN_CHUNK_BYTES = 1 << 20


@contextmanager
def fatal_errors() -> Iterator[None]:
    """Every command runs inside this: whatever ends it early (the database, a reader
    process, the search index, the disk) is one line on stderr and exit 2, and a closed
    standard output ends it quietly."""
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):  # typer's own ways out
        raise
    except BrokenPipeError:
        _let_stdout_go()
        raise typer.Exit(EXIT_PIPE_CLOSED) from None
    except SQLAlchemyError as exc:
        raise _fail(_db_error(exc)) from None
    except CorpusError as exc:
        raise _fail(exc.detail) from None
    except ChildProcessError as exc:  # a reader process failed (app/ingest/prefetch.py)
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"{exc.strerror or exc}: {exc.filename or 'output'}") from None
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, never a traceback
        raise _fail(f"{type(exc).__name__}: {exc}") from None


def _let_stdout_go() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (a test's capture): nothing to flush
        pass


class CorpusGroup(TyperGroup):
    """The command group: every command, of every subgroup, runs inside fatal_errors."""

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        with fatal_errors():
            return super().invoke(*args, **kwargs)


cli = typer.Typer(
    name="corpus",
    help="Load news articles into a database and serve them over HTTP.",
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
    cls=CorpusGroup,
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL; overrides DATABASE_URL. Default: sqlite:///data/corpus.db",
        show_default=False,
    ),
]


IndexDir = Annotated[
    str | None,
    typer.Option(
        "--index-dir",
        help="Search index folder; overrides CORPUS_INDEX_DIR. Default: derived from the "
        "database (beside a SQLite file; under data/index/ for PostgreSQL).",
        show_default=False,
    ),
]


def _settings(database_url: str | None, index_dir: str | None = None) -> Settings:
    given: dict[str, str] = {}
    if database_url:
        given["database_url"] = database_url
    if index_dir:
        given["index_dir"] = index_dir
    return Settings(**given)  # type: ignore[arg-type]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_FATAL)


def _db_error(exc: SQLAlchemyError) -> str:
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(exc).__name__
    if "no such table" in text or ("does not exist" in text and "relation" in text):
        return f"{text} (has the database been migrated? run `corpus migrate`)"
    return f"database error: {text}"


def _where(settings: Settings) -> str:
    """The database, as a user finds it: a SQLite file's absolute path, else its URL."""
    file = sqlite_file(settings.database_url)
    if file is not None:
        return str(file)
    return make_url(settings.database_url).render_as_string(hide_password=True)


ELSEWHERE = "point at another with --database-url or CORPUS_DATABASE_URL"


@contextmanager
def _database(settings: Settings, *, bulk: bool = False, load: bool = False) -> Iterator[Engine]:
    """An engine on a migrated database, disposed of after. A command that only reads or
    changes rows never creates one: a missing SQLite file or an empty database is an error
    that names it. `load` (ingest) migrates a new or empty database first, and says so.
    `bulk` lifts the API's statement timeout, which must not cut a long command short."""
    where = _where(settings)
    file = sqlite_file(settings.database_url)
    if file is not None and not file.exists() and not load:
        raise _fail(f"no database at {where}; {ELSEWHERE}, or create it with `corpus migrate`")
    engine = make_engine(
        settings.model_copy(update={"statement_timeout_ms": 0}) if bulk else settings,
        pooled=False,
    )
    try:
        revision, has_tables = schema_revision(engine)
        head = head_revision(settings.database_url)
        if revision is None and not has_tables and load:
            migrate(settings.database_url)
            typer.echo(f"{where} was empty: migrated it to revision {head}", err=True)
        elif revision is None and not has_tables:
            raise _fail(f"the database at {where} is empty: run `corpus migrate`; or {ELSEWHERE}")
        elif revision is None:
            raise _fail(f"the database at {where} has tables but no corpus schema; {ELSEWHERE}")
        elif revision != head:
            raise _fail(
                f"the database at {where} is at revision {revision}, not {head}: "
                "run `corpus migrate`"
            )
        yield engine
    finally:
        engine.dispose()


@cli.command("migrate")
def migrate_command(database_url: DatabaseUrl = None) -> None:
    """Bring the database schema to the newest revision (creating a SQLite file if none)."""
    migrate(_settings(database_url).database_url)
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
        typer.Argument(help="Files or directories to load; `-` reads standard input."),
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
    index_dir: IndexDir = None,
    max_content_bytes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Reject a record whose content is larger (UTF-8 bytes); overrides "
            "CORPUS_INGEST_MAX_CONTENT_BYTES. Default: 1048576 (1 MiB).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Load article records (JSON, JSON arrays, JSON Lines, CSV, gzipped, double-encoded).

    A database that does not exist yet, or is empty, is migrated first. Shows progress on
    stderr (a bar on a terminal, a line every 10 s otherwise). Then brings the search index
    up to date, unless a running server follows it already.
    """
    _quiet_driver_logs()
    for path in paths:
        if str(path) != STDIN and not path.exists():
            raise typer.BadParameter(f"{path} does not exist", param_hint="PATHS")
    mapping = _field_map(field_map or [])
    settings = _settings(database_url, index_dir)
    with ExitStack() as stack:
        spooled = stack.enter_context(_stdin_file()) if STDIN in map(str, paths) else None
        inputs = [spooled if str(p) == STDIN and spooled else p for p in paths]
        summary = _ingest(
            inputs,
            settings,
            stack,
            stdin=spooled,
            batch_size=batch_size,
            sources=sources,
            dry_run=dry_run,
            rejects=rejects,
            mapping=mapping,
            quiet=quiet,
            max_content_bytes=max_content_bytes or settings.ingest_max_content_bytes,
        )
    s = summary.as_dict()  # the progress bar is closed by now
    if as_json:
        sys.stdout.write(orjson.dumps(s).decode() + "\n")
    else:
        typer.echo(
            f"{'dry run: would have ' if dry_run else ''}read {s['read']}, "
            f"inserted {s['inserted']}, updated {s['updated']}, "
            f"unchanged {s['unchanged']}, rejected {s['rejected']}, "
            f"suppressed {s['suppressed']} "
            f"in {s['seconds']}s ({s['records_per_second']} records/s)",
            err=True,
        )
    if summary.rejected:
        raise typer.Exit(EXIT_REJECTS)


@contextmanager
def _stdin_file() -> Iterator[Path]:
    """Standard input in a temporary file, read as a file of that content would be (gzip by
    its first bytes), so the readers may sniff it and read it from several processes."""
    with tempfile.TemporaryDirectory(prefix="corpus-stdin-") as folder:
        head = sys.stdin.buffer.read(STDIN_CHUNK_BYTES)
        path = Path(folder) / ("stdin.gz" if head.startswith(b"\x1f\x8b") else "stdin")
        with path.open("wb") as out:
            out.write(head)
            shutil.copyfileobj(sys.stdin.buffer, out, STDIN_CHUNK_BYTES)
        yield path


def _ingest(
    paths: list[Path],
    settings: Settings,
    stack: ExitStack,
    *,
    stdin: Path | None,
    batch_size: int,
    sources: Path | None,
    dry_run: bool,
    rejects: Path | None,
    mapping: FieldMap,
    quiet: bool,
    max_content_bytes: int,
) -> Summary:
    """The load itself; what it opens goes on `stack`, closed before the summary prints."""
    progress = None if quiet else Progress(sys.stderr, tty=sys.stderr.isatty())
    if progress is not None:
        stack.callback(progress.close)
    # A dry run writes nothing, not even a schema: it needs a migrated database.
    engine = stack.enter_context(_database(settings, bulk=True, load=not dry_run))
    rejects_file = _RejectsFile(rejects) if rejects else None
    if rejects_file is not None:
        stack.callback(rejects_file.close)

    def report(reject: Reject) -> None:
        if stdin is not None and reject.path == str(stdin):
            reject = replace(reject, path=STDIN)
        if progress is not None:
            progress.message(str(reject))
        else:
            typer.echo(str(reject), err=True)
        if rejects_file is not None:
            rejects_file.write(reject)

    def phase(text: str) -> None:
        if progress is not None:
            progress.phase(text)

    # Everything imported so far lives as long as the process: keep it out of the cyclic
    # GC's full passes, which a load of millions of short-lived records triggers often.
    gc.freeze()
    vectors = (
        None
        if dry_run
        else vector_sync.load_indexer(settings, engine, expected_rows=expected_records(paths))
    )
    with (
        sync.LoadIndexer(settings, engine) if not dry_run else nullcontext() as indexer,
        vectors if vectors is not None else nullcontext(),
    ):

        def index_written(counts: BatchCounts) -> None:
            if indexer is not None:
                indexer.add(map(_indexed, counts.written), counts.revisions)
            if vectors is not None:
                vectors.add(map(_indexed, counts.written), counts.revisions)

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
            on_written=index_written,
            max_content_bytes=max_content_bytes,
        )
        if indexer is not None:
            phase("updating the search index")
            indexer.finish()
        if vectors is not None:
            phase("updating the vector index")
            vectors.finish()
    return summary


def _no_progress(_: object) -> None:
    pass


def _indexed(r: ArticleIn) -> sync.Article:
    """What the search index holds of a written record."""
    return (r.article_id, r.source_id, r.title, r.content, r.published_at, r.url, r.author)


@cli.command("export")
def export_command(
    database_url: DatabaseUrl = None,
    source_id: Annotated[
        list[int] | None,
        typer.Option("--source-id", min=1, help="Only these sources. Repeatable."),
    ] = None,
    fmt: Annotated[
        Format | None,
        typer.Option(
            "--format", help="jsonl or csv; by default what -o's name ends in (.csv: csv)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            dir_okay=False,
            help="File to write (gzipped when its name ends in .gz); stdout if omitted.",
        ),
    ] = None,
) -> None:
    """Stream the corpus (or some sources) out as ingestible records, in article_id order."""
    flt = ArticleFilter(source_ids=tuple(source_id or ()))
    fmt = fmt or Format.of_file(output)
    with _database(_settings(database_url), bulk=True) as engine:
        if output is None:
            with _stdout() as out:
                for chunk in export_chunks(engine, flt, fmt):
                    out.write(chunk)
            return
        try:
            with open_for_write(output) as out:
                for chunk in export_chunks(engine, flt, fmt):
                    out.write(chunk)
        except BaseException:
            output.unlink(missing_ok=True)  # no half an export left to be taken for one
            raise


def _ids(given: list[int] | None, from_file: Path | None) -> list[int]:
    """IDs from the arguments and from `--from-file` (one a line; blank lines and `#` comments
    skipped)."""
    ids = list(given or [])
    if from_file is None:
        return ids
    try:
        lines = from_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read {from_file}: {exc}") from None
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not text.isdigit() or int(text) < 1:
            raise _fail(f"{from_file}:{number}: not an article id: {text!r}")
        ids.append(int(text))
    return ids


IdArgs = Annotated[list[int] | None, typer.Argument(min=1, show_default=False, help="Article ids.")]
FromFile = Annotated[
    Path | None,
    typer.Option(
        "--from-file",
        exists=True,
        dir_okay=False,
        help="Also the ids in this file, one a line (# starts a comment).",
    ),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Count what would happen; change nothing.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]


def _report(outcome: takedowns.Outcome, done: str, *, dry_run: bool, as_json: bool) -> None:
    """The summary (stdout as JSON, or a line on stderr), the missing ids on stderr, and
    exit 1 when there were any."""
    if outcome.missing:
        typer.echo(f"missing: {' '.join(map(str, outcome.missing))}", err=True)
    counts: dict[str, object] = {done: len(outcome.done)}
    if done == "deleted":
        counts["already_deleted"] = len(outcome.already)
    counts |= {"missing": len(outcome.missing), "revision": outcome.revision, "dry_run": dry_run}
    if as_json:
        sys.stdout.write(orjson.dumps(counts).decode() + "\n")
    else:
        line = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items() if k != "dry_run")
        typer.echo(f"{'dry run: would have ' if dry_run else ''}{line}", err=True)
    if outcome.missing:
        raise typer.Exit(EXIT_REJECTS)


@cli.command("delete")
def delete_command(
    ids: IdArgs = None,
    from_file: FromFile = None,
    source_id: Annotated[
        int | None,
        typer.Option("--source-id", min=1, help="Also every article of this source."),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(help="Why (kept in the database for operators; never served)."),
    ] = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
    index_dir: IndexDir = None,
) -> None:
    """Take articles down: delete their content and keep them from coming back.

    The API answers 410 Gone for them at once, the change feed reports each deletion, and
    ingest skips them (counted as suppressed) until `corpus restore`. Exit 1 when some ids
    did not exist (listed on stderr).
    """
    wanted = _ids(ids, from_file)
    if not wanted and source_id is None:
        raise typer.BadParameter("give article ids, --from-file or --source-id")
    settings = _settings(database_url, index_dir)
    with _database(settings, bulk=True) as engine:
        outcome = takedowns.delete_articles(
            engine, wanted, source_id=source_id, reason=reason, dry_run=dry_run
        )
        if outcome.done and not dry_run:
            sync.catch_up(settings, engine)  # unless a server follows the index already
            vector_sync.catch_up_configured(settings, engine)
    _report(outcome, "deleted", dry_run=dry_run, as_json=as_json)


@cli.command("restore")
def restore_command(
    ids: IdArgs = None,
    from_file: FromFile = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Lift takedowns: the next ingest of these articles' records brings them back.

    Exit 1 when some ids had no takedown standing (listed on stderr).
    """
    wanted = _ids(ids, from_file)
    if not wanted:
        raise typer.BadParameter("give article ids or --from-file")
    with _database(_settings(database_url)) as engine:
        outcome = takedowns.restore_articles(engine, wanted, dry_run=dry_run)
    _report(outcome, "restored", dry_run=dry_run, as_json=as_json)


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
    index_dir: IndexDir = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log each request.")] = True,
) -> None:
    """Serve the API with uvicorn (docs at /docs)."""
    import uvicorn

    settings = _settings(database_url, index_dir)
    with _database(settings):
        pass  # a missing or unmigrated database is said now, not as a 503 per request
    # Workers are fresh processes that build Settings from the environment.
    os.environ["CORPUS_DATABASE_URL"] = settings.database_url
    if settings.index_dir:
        os.environ["CORPUS_INDEX_DIR"] = settings.index_dir
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
    """Write a reproducible synthetic corpus (Zipf words, 20 named sources, dates over four
    years, bylines and urls, 1.5-4.5 KB bodies), and its sources file beside it."""
    from app import synth

    written = synth.write(output, count, seed=seed, first_id=first_id)
    typer.echo(f"wrote {count} articles ({written / 1e6:.1f} MB) to {output}", err=True)
    names = output.with_name(SOURCES_FILE)
    if not names.exists():
        names.write_bytes(orjson.dumps(synth.source_names(seed), option=orjson.OPT_INDENT_2))
        typer.echo(f"named their sources in {names} (ingest with --sources {names})", err=True)


index_cli = typer.Typer(
    help="The search index: status, rebuild and snapshot.", no_args_is_help=True
)
cli.add_typer(index_cli, name="index")


@index_cli.command("status")
def index_status_command(
    database_url: DatabaseUrl = None,
    index_dir: IndexDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """The index's revision against the database's, the lag between them, its size, and
    the language it stems (CORPUS_LANGUAGE when it was built); and the same of the vector
    index beside it."""
    settings = _settings(database_url, index_dir)
    path = index_path(settings)
    with _database(settings) as engine:
        database_revision = sync.newest_revision(engine)
        database_id = corpus_meta.database_id(engine)
    index = SearchIndex.open(path)
    meta = index.meta() if index is not None else None
    state = "missing" if index is None else "ready"
    if meta is not None and meta.database_id != database_id:
        state = "another database's"
    revision = meta.revision if meta is not None else 0
    status = {
        "path": str(path),
        "state": state,
        "revision": revision,
        "database_revision": database_revision,
        "lag": max(0, database_revision - revision),
        "size_bytes": index.size_bytes() if index is not None else 0,
        "vectors": vector_sync.status(settings, database_revision),  # search by meaning's
        "language": meta.language if meta is not None else None,
    }
    if as_json:
        sys.stdout.write(orjson.dumps(status).decode() + "\n")
        return
    for key, value in status.items():
        typer.echo(f"{key}: {value}")


REBUILD_SWITCH_WAIT_S = 600.0


@index_cli.command("rebuild")
def index_rebuild_command(database_url: DatabaseUrl = None, index_dir: IndexDir = None) -> None:
    """Build the index again from the database, beside the one in use, then switch to it.

    Running servers keep answering from the old index meanwhile; the server that follows
    the folder then catches the new one up and puts it in place (within a poll), and every
    server reads it from then on. With no server running, this command switches itself.
    """
    settings = _settings(database_url, index_dir)
    folder = index_path(settings)
    with _database(settings, bulk=True) as engine:
        revision = sync.build_next(settings, engine)
        typer.echo(f"search index rebuilt at revision {revision}; switching to it", err=True)
        deadline = time.monotonic() + REBUILD_SWITCH_WAIT_S
        while (sync.next_folder(folder) / sync.READY_FILE).exists():
            lock = sync.FollowerLock(folder)
            if lock.acquire():  # no server follows the folder: switch here
                try:
                    sync.adopt_next(folder, engine)
                finally:
                    lock.release()
                break
            if time.monotonic() > deadline:
                raise _fail(
                    f"the process holding {lock.path} did not switch to the new index in "
                    f"{REBUILD_SWITCH_WAIT_S:.0f} s (a long `corpus ingest`?); it stays ready "
                    f"in {sync.next_folder(folder)}"
                )
            time.sleep(0.1)
    typer.echo(f"the search index in {folder} is the new one", err=True)


@index_cli.command("snapshot")
def index_snapshot_command(
    path: Annotated[Path, typer.Argument(help="New folder to write the copy to.")],
    database_url: DatabaseUrl = None,
    index_dir: IndexDir = None,
    as_json: AsJson = False,
) -> None:
    """Copy this host's index, as of its last commit, to a new folder (and its vector index
    beside it: PATH.vectors), while its servers keep serving and following. A new host given
    the copy as its index folder answers searches once it has applied the changes since (a
    host of another database, or of another index schema, rebuilds instead)."""
    settings = _settings(database_url, index_dir)
    try:
        made = snapshot.take_snapshot(index_path(settings), path)
    except snapshot.SnapshotError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        where = exc.filename or path
        raise _fail(f"cannot write the snapshot: {exc.strerror or exc}: {where}") from None
    summary = {
        "path": str(made.path),
        "revision": made.meta.revision,
        "database_id": made.meta.database_id,
        "files": made.files,
        "size_bytes": made.size_bytes,
        "vectors": None
        if made.vectors is None
        else {"path": str(vectors_path(made.path)), "revision": made.vectors.revision},
    }
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        return
    typer.echo(
        f"search index at revision {made.meta.revision} copied to {made.path} "
        f"({made.files} files, {made.size_bytes / 1e6:.1f} MB)",
        err=True,
    )
    if made.vectors is not None:
        typer.echo(
            f"vector index at revision {made.vectors.revision} copied to {vectors_path(made.path)}",
            err=True,
        )


keys_cli = typer.Typer(
    help="API keys (CORPUS_AUTH=keys): create, list, revoke.", no_args_is_help=True
)
cli.add_typer(keys_cli, name="keys")


def _expiry(text: str | None) -> datetime | None:
    """`--expires`: an ISO date (the key stops working at 00:00 UTC that day) or date-time."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"--expires {text!r} is not an ISO date such as 2027-01-31") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    if moment <= datetime.now(UTC):
        raise _fail(f"--expires {text!r} is in the past: a key that never works is no key")
    return moment


@keys_cli.command("create")
def keys_create_command(
    name: Annotated[str, typer.Option("--name", help="Who or what the key is for.")],
    rate: Annotated[
        str | None,
        typer.Option(
            help="Requests allowed, e.g. 600/minute, 10/second, 5000/day.", show_default=False
        ),
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="ISO date or date-time it stops working.", show_default=False)
    ] = None,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
) -> None:
    """Make a key and print it: the only time it is shown (the database keeps a hash)."""
    settings = _settings(database_url)
    rate = rate or settings.default_key_rate
    try:
        limits.parse(rate)
    except ValueError:
        raise _fail(f"--rate {rate!r} is not a rate such as 600/minute") from None
    expires_at = _expiry(expires)
    with _database(settings) as engine, Session(engine) as session:
        key, row = key_queries.create_key(session, name=name, rate=rate, expires_at=expires_at)
    if as_json:
        made = {"key": key, "prefix": row.prefix, "name": row.name}
        sys.stdout.write(orjson.dumps(made).decode() + "\n")
        return
    typer.echo(key)
    typer.echo(f"key {row.prefix} for {row.name!r} at {rate}: shown only now", err=True)


@keys_cli.command("list")
def keys_list_command(database_url: DatabaseUrl = None, as_json: AsJson = False) -> None:
    """Every key: prefix, name, rate, created, expires, last used, requests today and in total."""
    with _database(_settings(database_url)) as engine, Session(engine) as session:
        rows = [_key_summary(row) for row in key_queries.list_keys(session)]
    if as_json:
        sys.stdout.write(orjson.dumps(rows).decode() + "\n")
        return
    header = [
        "prefix",
        "name",
        "rate",
        "created",
        "expires",
        "last_used",
        "today",
        "total",
        "state",
    ]
    table = [header, *([_cell(row[column]) for column in header] for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _key_summary(row: models.ApiKey) -> dict[str, object]:
    now = datetime.now(UTC)
    state = "active"
    if row.revoked_at is not None:
        state = "revoked"
    elif row.expires_at is not None and row.expires_at <= now:
        state = "expired"
    today = row.requests_today if row.usage_day == now.date().isoformat() else 0
    return {
        "prefix": row.prefix,
        "name": row.name,
        "rate": row.rate,
        "created": row.created_at,
        "expires": row.expires_at,
        "last_used": row.last_used_at,
        "today": today,
        "total": row.requests_total,
        "state": state,
    }


@keys_cli.command("revoke")
def keys_revoke_command(
    key: Annotated[
        str,
        typer.Argument(
            metavar="PREFIX",
            help="The key's prefix, as `corpus keys list` shows, or the whole key.",
        ),
    ],
    database_url: DatabaseUrl = None,
) -> None:
    """Refuse the key from now on (every server within CORPUS_KEY_CACHE_S seconds). Given the
    whole key, revokes it by its prefix; no message ever repeats a secret."""
    prefix = key_queries.prefix_of(key)
    if prefix is None:
        raise _fail("not a key prefix (8 lower-case letters and digits) nor a whole key")
    with _database(_settings(database_url)) as engine, Session(engine) as session:
        row = key_queries.revoke_key(session, prefix)
    typer.echo(f"key {row.prefix} ({row.name}) revoked", err=True)


def main() -> None:
    cli()
