"""What a server knows about API keys between requests: a short cache of key lookups, the
rate limiters, and usage counts waiting to be written. One Keyring per process, kept on
`app.state.keyring`; the middleware in auth.py asks it, and create_app's lifespan starts
and stops it.

Derived from the `api_key` table, never the other way round: a cached lookup lives
`key_cache_s` (so a revoked key is refused everywhere within that), and usage counts go
to the table every `usage_flush_s`, one transaction per flush, never a write per request.
Lookups read the server's own database, which may be a read replica; counts go to the
primary (`primary_database_url`) when one is set, and when the database refuses them as
a replica does, they are dropped, with one warning per process.

Limits are fixed windows (a counter per key that expires with its window, as limits'
FixedWindowRateLimiter keeps them): in this process (InProcessCounters), or in Redis
through the `limits` library's storage when `redis_url` is set, so that every worker and
host of one database shares one budget per key. Counters are named by the database's id,
so two corpora may share one Redis. A request costs one increment; the window's end is
asked once per window.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple, Protocol

import redis.asyncio
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.api.calls import in_thread
from app.db import refused_as_read_only
from app.meta import database_id
from app.queries import keys as key_queries
from app.queries.keys import KeyRecord, Usage
from app.settings import Settings

log = logging.getLogger(__name__)

Verdict = Literal["valid", "unknown", "revoked", "expired"]
# Lookups kept at once: a flood of made-up keys empties the cache rather than growing it.
MAX_CACHED_KEYS = 10_000
REDIS_TIMEOUT_S = 1.0
SWEEP_EVERY_S = 1.0


class Counters(Protocol):
    """The three storage calls a fixed window needs (limits' asyncio storage API)."""

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int: ...
    async def get(self, key: str) -> int: ...
    async def get_expiry(self, key: str) -> float: ...


class InProcessCounters:
    """Fixed-window counters in this process's memory, for a server without Redis.

    limits' MemoryStorage does the same behind an asyncio lock per counter, a read before
    each increment and an exception wrapper around each call: a third of a keyed request's
    key check (bench/inprocess.py: 18-30 µs a request with it, 14-25 without). One event
    loop owns these counters and no call awaits between its read and its write, so a dict
    suffices. Expired counters read as absent and are swept at most once a second, so a
    flood of made-up keys' failure counters does not outlive its windows.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}  # name -> (count, window end, epoch s)
        self._next_sweep_s = 0.0

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        found = self._counts.get(key)
        return found if found is not None and found[1] > now else None

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._clock()
        found = self._live(key, now)
        if found is None:
            self._sweep(now)
            found = (0, now + expiry)
        count = found[0] + amount
        self._counts[key] = (count, found[1])
        return count

    async def get(self, key: str) -> int:
        found = self._live(key, self._clock())
        return 0 if found is None else found[0]

    async def get_expiry(self, key: str) -> float:
        now = self._clock()
        found = self._live(key, now)
        return now if found is None else found[1]

    def _sweep(self, now: float) -> None:
        if now >= self._next_sweep_s:
            self._next_sweep_s = now + SWEEP_EVERY_S
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}


class Budget(NamedTuple):
    """One limit's state after a request: the IETF RateLimit fields."""

    allowed: bool
    quota: int
    window_s: int
    remaining: int
    reset_s: int  # seconds until the window starts again


@dataclass
class _Counter:
    """A key's counter in the limiter's storage, and when its window ends (epoch seconds)."""

    item: RateLimitItem
    name: str
    window_s: int
    reset_at: float = 0.0


def redis_storage_uri(url: str) -> str:
    """`redis://...` as the `limits` library's asyncio storage names it."""
    return url if url.startswith("async+") else f"async+{url}"


class Keyring:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.failure_limit = parse(settings.auth_failure_rate)
        self._clock = clock
        self._lookups: dict[str, tuple[float, KeyRecord | None]] = {}
        self._pending: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._counters: dict[tuple[str, str], _Counter] = {}
        self._usage: dict[int, Usage] = {}
        self._engine: Engine | None = None
        self._writer: Engine | None = None
        self._refused_warned = False
        self._namespace: str | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._storage: Counters | None = None
        self._redis_pool: redis.asyncio.ConnectionPool | None = None

    # Lifecycle: create_app's lifespan.
    def start(self, engine: Engine, writer: Engine | None = None) -> None:
        """Read keys through `engine`; write usage through `writer` (default: `engine`)."""
        self._engine = engine
        self._writer = writer or engine
        if self.settings.redis_url:
            # Our own pool, so that stop() can close its connections; short timeouts, so
            # that a Redis in trouble is a fast 503 rather than a hung request.
            self._redis_pool = redis.asyncio.ConnectionPool.from_url(
                self.settings.redis_url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
            )
            self._storage = RedisStorage(
                redis_storage_uri(self.settings.redis_url),
                implementation="redispy",
                wrap_exceptions=True,
                connection_pool=self._redis_pool,  # type: ignore[arg-type]  # typed too narrowly
            )
        else:
            self._storage = InProcessCounters()
        self._flusher = asyncio.create_task(self._flush_every(self.settings.usage_flush_s))

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        if self._redis_pool is not None:
            await self._redis_pool.disconnect()

    # Keys.
    def cached(self, key_hash: str) -> tuple[bool, KeyRecord | None]:
        """(True, what we know) while the cached lookup is fresh, else (False, None)."""
        cached = self._lookups.get(key_hash)
        if cached is not None and cached[0] > self._clock():
            return True, cached[1]
        return False, None

    async def lookup(self, key_hash: str) -> KeyRecord | None:
        """The key with this hash, read from the database and cached for `key_cache_s`.

        Concurrent lookups of one key share one read: when a busy key's cached lookup
        expires, every request in flight, and every one that arrives before the read
        returns, would otherwise read it again, each on a thread of its own."""
        pending = self._pending.get(key_hash)
        if pending is None or pending.get_loop() is not asyncio.get_running_loop():
            pending = self._pending[key_hash] = asyncio.ensure_future(self._read(key_hash))
            pending.add_done_callback(lambda done: self._settled(key_hash, done))
        # A caller cancelled (its client left) does not cancel the others' read.
        return await asyncio.shield(pending)

    def _settled(self, key_hash: str, done: "asyncio.Future[KeyRecord | None]") -> None:
        if self._pending.get(key_hash) is done:
            del self._pending[key_hash]
        if not done.cancelled():
            done.exception()  # retrieved, should every caller have left before it ended

    async def _read(self, key_hash: str) -> KeyRecord | None:
        now = self._clock()
        engine = self.engine
        if self._namespace is None:
            self._namespace = await in_thread(lambda: database_id(engine))
        record = await in_thread(lambda: key_queries.find_key(engine, key_hash))
        if len(self._lookups) >= MAX_CACHED_KEYS:
            self._lookups.clear()
        self._lookups[key_hash] = (now + self.settings.key_cache_s, record)
        return record

    @staticmethod
    def verdict(record: KeyRecord | None, now: datetime | None = None) -> Verdict:
        """What `record` says of its key at `now` (the present when omitted)."""
        if record is None:
            return "unknown"
        if record.revoked_at is not None:
            return "revoked"
        if record.expires_at is not None and record.expires_at <= (now or datetime.now(UTC)):
            return "expired"
        return "valid"

    # Limits.
    async def spend(self, rate: str, prefix: str) -> Budget:
        """Count one request against the key `prefix`'s `rate`; whether it was within it.

        The fixed window of limits' FixedWindowRateLimiter (`incr <= amount`), on its storage,
        but in one storage call where hit() and get_window_stats() take three: the count
        comes back from the increment, and the window's end is asked once per window.
        """
        counter = self._counters.get((rate, prefix))
        if counter is None:
            if len(self._counters) >= MAX_CACHED_KEYS:
                self._counters.clear()
            item = parse(rate)
            name = item.key_for(self.namespace, "key", prefix)
            counter = self._counters[(rate, prefix)] = _Counter(item, name, item.get_expiry())
        count = await self.storage.incr(counter.name, counter.window_s)
        now = time.time()
        if count == 1 or counter.reset_at <= now:
            counter.reset_at = await self.storage.get_expiry(counter.name)
        quota = counter.item.amount
        # Never past the window: a store that rounds its expiry (Redis' TTL is whole
        # seconds, read after `now`) would otherwise say 61 s of a 60 s window.
        reset_s = min(counter.window_s, max(0, math.ceil(counter.reset_at - now)))
        return Budget(count <= quota, quota, counter.window_s, max(0, quota - count), reset_s)

    async def failures_exhausted(self, address: str) -> Budget | None:
        """The failure budget of `address` when it has none left, else None."""
        if self._namespace is None:
            return None  # no lookup yet in this process: nothing counted under our name
        limit, name = self.failure_limit, self._failure_counter(address)
        if await self.storage.get(name) < limit.amount:
            return None
        window_s = limit.get_expiry()
        reset_s = max(1, math.ceil(await self.storage.get_expiry(name) - time.time()))
        return Budget(False, limit.amount, window_s, 0, min(window_s, reset_s))

    async def record_failure(self, address: str) -> None:
        limit = self.failure_limit
        await self.storage.incr(self._failure_counter(address), limit.get_expiry())

    def _failure_counter(self, address: str) -> str:
        return self.failure_limit.key_for(self.namespace, "failed", address)

    # Usage.
    def used(self, key_id: int) -> None:
        """Count a request made with `key_id`, to be written with the next flush."""
        now = time.time()
        usage = self._usage.get(key_id)
        if usage is None:
            self._usage[key_id] = Usage(1, now)
        else:
            usage.requests += 1
            usage.last_used_s = now

    async def flush(self) -> None:
        """Write the counts gathered since the last flush; on failure keep them for the next."""
        if not self._usage or self._writer is None:
            return
        pending, self._usage = self._usage, {}
        writer = self._writer
        try:
            await in_thread(lambda: key_queries.add_usage(writer, pending))
        except SQLAlchemyError as exc:
            if refused_as_read_only(exc):
                self._refused(len(pending))
                return
            log.warning("key usage not written, kept for the next flush: %s", type(exc).__name__)
            for key_id, usage in pending.items():
                later = self._usage.get(key_id)
                if later is not None:
                    usage.requests += later.requests
                    usage.last_used_s = later.last_used_s
                self._usage[key_id] = usage

    def _refused(self, keys: int) -> None:
        if not self._refused_warned:
            self._refused_warned = True
            log.warning(
                "key usage not written: the database is a read-only replica; set "
                "CORPUS_PRIMARY_DATABASE_URL to keep usage counts (dropping those of %d keys, "
                "and later ones, without another warning)",
                keys,
            )

    async def _flush_every(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            await self.flush()

    # Parts that exist once started.
    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "Keyring.start() runs in the app's lifespan"
        return self._engine

    @property
    def storage(self) -> Counters:
        assert self._storage is not None, "Keyring.start() runs in the app's lifespan"
        return self._storage

    @property
    def namespace(self) -> str:
        return self._namespace or "-"
