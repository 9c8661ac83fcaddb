"""The change feed: rows by revision, articles and takedowns merged. Takes a Session,
returns rows; knows nothing of HTTP.

Writers number revisions under the write lock and commit in that order (see
app/ingest/writer.py), so once a reader sees revision N, every revision below N is already
visible: walking `revision > after` in order never skips a change or repeats one. Takedowns
take their revisions from the same sequence under the same lock (app/takedowns.py).
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlmodel import Session

from app import revisions
from app.queries.articles import DETAIL_COLUMNS

CHANGE_COLUMNS = (*DETAIL_COLUMNS, "revision")


def list_changes(session: Session, *, after: int, limit: int) -> Sequence[Row[Any]]:
    """Up to `limit` changes with revision > `after` in revision order: articles (with
    `deleted` false) and takedowns (`deleted` true, with `deleted_at`); see
    app/revisions.py."""
    return session.execute(revisions.changes_after(CHANGE_COLUMNS, after, limit)).all()
