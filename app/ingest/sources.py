"""Sources: sources files (`{"2": "Reuters"}`, id to name) and sources named in records.

A corpus mapped with `--map publication=source_id` names its sources instead of numbering
them: `SourceNames` looks each name up in `source`, and gives a new name the next free
`source_id`, under the writers' lock so two concurrent ingests never number one name twice.
"""

from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson
from sqlalchemy import Connection, Engine, func, select

from app import models
from app.db import SQLITE_BEGIN_OPTION
from app.ingest.records import Located, OnReject, Reject, raw_text
from app.ingest.stores import upsert_sources
from app.models import MAX_ID
from app.writes.busy import while_busy
from app.writes.lock import take_write_lock


def read_sources(path: Path, on_reject: OnReject) -> dict[int, str | None]:
    """The valid id → name entries of a sources file; each bad entry is a Reject."""
    name = str(path)
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        on_reject(Reject(name, 1, f"cannot read sources file: {exc}"))
        return {}
    if not isinstance(data, dict):
        on_reject(Reject(name, 1, "a sources file must be a JSON object of id → name"))
        return {}
    names: dict[int, str | None] = {}
    for key, value in data.items():
        if not key.isdigit() or not 1 <= int(key) <= MAX_ID:
            on_reject(Reject(name, 1, f"source id {key!r} is not a positive integer"))
        elif value is not None and (not isinstance(value, str) or not value.strip()):
            on_reject(Reject(name, 1, f"source {key}: name must be a non-empty string"))
        else:
            names[int(key)] = value
    return names


def load_sources(engine: Engine, path: Path, on_reject: OnReject, *, dry_run: bool = False) -> int:
    """Upsert the names in `path` (check them only, in a dry run); how many it named."""
    names = read_sources(path, on_reject)
    if not dry_run:

        def attempt() -> None:
            with engine.begin() as connection:
                upsert_sources(connection, names)

        while_busy(attempt)
    return len(names)


class SourceNames:
    """Source name → source_id, creating sources for new names (or, dry, only numbering them)."""

    def __init__(self, engine: Engine, *, dry_run: bool = False) -> None:
        self.engine = engine
        self.dry_run = dry_run
        self.ids: dict[str, int] = {}
        self._next_dry_id = 0

    def id_for(self, name: str) -> int:
        known = self.ids.get(name)
        if known is not None:
            return known
        options = {} if self.dry_run else {SQLITE_BEGIN_OPTION: "IMMEDIATE"}

        def attempt() -> int:
            with (
                self.engine.connect().execution_options(**options) as connection,
                connection.begin(),
            ):
                return self._find_or_create(connection, name)

        source_id = while_busy(attempt)
        self.ids[name] = source_id
        return source_id

    def _find_or_create(self, connection: Connection, name: str) -> int:
        source = models.source_table
        if not self.dry_run:
            take_write_lock(connection)
        found = connection.execute(
            select(func.min(source.c.source_id)).where(source.c.name == name)
        ).scalar_one()
        if found is not None:
            return int(found)
        top = connection.execute(select(func.coalesce(func.max(source.c.source_id), 0)))
        source_id = max(int(top.scalar_one()) + 1, self._next_dry_id)
        if self.dry_run:
            self._next_dry_id = source_id + 1
        else:
            connection.execute(source.insert().values(source_id=source_id, name=name))
        return source_id


def name_sources(
    values: Iterable[Located], names: SourceNames, on_reject: OnReject
) -> Iterator[Located]:
    """Replace a string `source_id` (a source's name) by the id of that source."""
    for item in values:
        record = item.value
        name = record.get("source_id") if isinstance(record, dict) else None
        if not isinstance(name, str):
            yield item
            continue
        name = name.strip()
        if not name:
            on_reject(
                Reject(item.path, item.line, "source name is empty", raw_text(item.raw), item.index)
            )
            continue
        assert isinstance(record, dict)
        named = {**record, "source_id": names.id_for(name)}
        yield Located(item.path, item.line, named, item.raw, item.index)
