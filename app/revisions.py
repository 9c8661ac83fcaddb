"""The newest revision: the data's version, raised by every write.

Articles and takedowns share one sequence (writers number both under the write lock,
app/ingest/stores.py), so the newest revision is the larger of the two tables' maxima.
Every reader of it (the writers, the per-revision cache, the search index follower) uses
this one statement: two probes of unique indexes, never a scan.
"""

from typing import Any

from sqlalchemy import Connection, Select, func, select, union_all

from app import models

_MAXIMA = union_all(
    select(func.max(models.article_table.c.revision).label("revision")),
    select(func.max(models.takedown_table.c.revision).label("revision")),
).subquery("maxima")

NEWEST: Select[Any] = select(func.coalesce(func.max(_MAXIMA.c.revision), 0))


def newest_revision(connection: Connection) -> int:
    """The newest revision of any article or takedown; 0 for an empty database."""
    return int(connection.execute(NEWEST).scalar_one())
