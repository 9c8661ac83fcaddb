"""Sources files: a JSON object mapping source id to name, e.g. `{"2": "Reuters"}`."""

from pathlib import Path

import orjson
from sqlalchemy import Engine

from app.ingest.records import OnReject, Reject
from app.ingest.validate import MAX_ID
from app.ingest.writer import upsert_sources


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


def load_sources(engine: Engine, path: Path, on_reject: OnReject) -> int:
    """Upsert the names in `path`; how many sources it named."""
    names = read_sources(path, on_reject)
    with engine.begin() as connection:
        upsert_sources(connection, names)
    return len(names)
