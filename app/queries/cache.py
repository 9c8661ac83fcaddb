"""Figures that are costly to compute (totals, facets, whole rankings), kept per data revision.

Every ingest that changes a row, and every takedown, raises the newest `revision`, so a
value tagged with the revision it was computed at is served only while the data it was
computed from is unchanged; the probe is two index lookups (app/revisions.py). The LRU is
bounded by weight (a ranking weighs its hit count), so memory stays flat. No HTTP here.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

from sqlalchemy import Dialect
from sqlmodel import Session

from app.queries.prepared import Prepared
from app.revisions import NEWEST

T = TypeVar("T")
# ~16 bytes a unit (a ranked hit: float8 score + int64 id): 2M units stay near 32 MB.
BYTES_PER_WEIGHT = 16
MAX_WEIGHT = 2_000_000


class RevisionCache:
    """A thread-safe LRU whose entries are valid for the revision they were computed at."""

    def __init__(self, max_weight: int = MAX_WEIGHT) -> None:
        self._entries: OrderedDict[str, tuple[int, int, object]] = OrderedDict()
        self._weight = 0
        self._max = max_weight
        self._lock = threading.Lock()

    def get(self, key: str, revision: int) -> object | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[0] != revision:
                return None
            self._entries.move_to_end(key)
            return hit[2]

    def put(self, key: str, revision: int, value: object, weight: int = 1) -> None:
        if weight > self._max // 4:
            return  # one entry must not evict most of the others
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            self._entries[key] = (revision, weight, value)
            self._weight += weight
            while self._weight > self._max and self._entries:
                _, (_, dropped, _) = self._entries.popitem(last=False)
                self._weight -= dropped

    def get_or_compute(self, key: str, revision: int, compute: Callable[[], T]) -> T:
        hit = self.get(key, revision)
        if hit is not None:
            return hit  # type: ignore[return-value]
        value = compute()  # outside the lock: a slow count must not block other requests
        self.put(key, revision, value)
        return value


@lru_cache(maxsize=8)  # one entry per engine's dialect: one in production
def _prepared_newest(dialect: Dialect) -> Prepared:
    return Prepared.of(NEWEST, dialect)


def newest_revision(session: Session) -> int:
    """The data's version: any write raises it (app/revisions.py: two index probes)."""
    return int(_prepared_newest(session.get_bind().dialect).rows(session, {})[0][0])
