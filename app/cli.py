"""The `corpus` command: parses arguments, calls the library, maps outcomes to exit statuses.

Exit statuses: 0 clean, 1 some records rejected (the rest loaded), 2 usage or database error.
"""

import os
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app.db import make_engine, migrate
from app.ingest.pipeline import DEFAULT_BATCH_SIZE, ingest
from app.ingest.records import Reject
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
) -> None:
    """Load article records (JSON, JSON arrays, JSON Lines, gzipped, double-encoded)."""
    settings = _settings(database_url)

    def report(reject: Reject) -> None:
        typer.echo(str(reject), err=True)

    # The API's statement timeout guards requests; a bulk load must not be cut short by it.
    engine = make_engine(settings.model_copy(update={"statement_timeout_ms": 0}), pooled=False)
    try:
        summary = ingest(paths, engine, batch_size=batch_size, on_reject=report, sources=sources)
    except SQLAlchemyError as exc:
        raise _fail(_db_error(exc)) from None
    finally:
        engine.dispose()
    if as_json:
        sys.stdout.write(orjson.dumps(summary.as_dict()).decode() + "\n")
    else:
        s = summary.as_dict()
        typer.echo(
            f"read {s['read']}, inserted {s['inserted']}, updated {s['updated']}, "
            f"unchanged {s['unchanged']}, rejected {s['rejected']} "
            f"in {s['seconds']}s ({s['records_per_second']} records/s)",
            err=True,
        )
    if summary.rejected:
        raise typer.Exit(EXIT_REJECTS)


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
    """Write a reproducible synthetic corpus (Zipf words, 20 sources, 2-6 KB bodies)."""
    from app import synth

    written = synth.write(output, count, seed=seed, first_id=first_id)
    typer.echo(f"wrote {count} articles ({written / 1e6:.1f} MB) to {output}", err=True)


def main() -> None:
    cli()
