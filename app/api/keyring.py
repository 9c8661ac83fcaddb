"""What a server knows about API keys between requests: a short cache of key lookups, the
rate limiters, and usage counts waiting to be written. One Keyring per process, kept on
`app.state.keyring`; the middleware in auth.py asks it, and create_app's lifespan starts
and stops it.

Derived from the `api_key` table, never the other way round: a cached lookup lives
`key_cache_s` (so a revoked key is refused everywhere within that), and usage counts go
to the table every `usage_flush_s`, one transaction per flush, never a write per request.

Limits are fixed windows of the `limits` library: in this process, or in Redis when
`redis_url` is set, so that every worker and host of one database shares one budget per
key. Counters are named by the database's id, so two corpora may share one Redis.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import redis.asyncio
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.api.calls import in_thread
from app.queries import keys as key_queries
from app.queries.keys import KeyRecord, Usage
from app.search.sync import database_id
from app.settings import Settings

log = logging.getLogger(__name__)

Verdict = Literal["valid", "unknown", "revoked", "expired"]
# Lookups kept at once: a flood of made-up keys empties the cache rather than growing it.
MAX_CACHED_KEYS = 10_000
REDIS_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Budget:
    """One limit's state after a request: the IETF RateLimit fields."""

    allowed: bool
    quota: int
    window_s: int
    remaining: int
    reset_s: int  # seconds until the window starts again


def redis_storage_uri(url: str) -> str:
    """`redis://...` as the `limits` library's asyncio storage names it."""
    return url if url.startswith("async+") else f"async+{url}"


class Keyring:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.failure_limit = parse(settings.auth_failure_rate)
        self._clock = clock
        self._lookups: dict[str, tuple[float, KeyRecord | None]] = {}
        self._items: dict[str, RateLimitItem] = {}
        self._usage: dict[int, Usage] = {}
        self._engine: Engine | None = None
        self._namespace: str | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._storage: Storage | None = None
        self._limiter: FixedWindowRateLimiter | None = None
        self._redis_pool: redis.asyncio.ConnectionPool | None = None

    # Lifecycle: create_app's lifespan.
    def start(self, engine: Engine) -> None:
        self._engine = engine
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
            self._storage = MemoryStorage()
        self._limiter = FixedWindowRateLimiter(self._storage)
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
    async def lookup(self, key_hash: str) -> KeyRecord | None:
        """The key with this hash, from the cache while fresh, else from the database."""
        now = self._clock()
        cached = self._lookups.get(key_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        engine = self.engine
        if self._namespace is None:
            self._namespace = await in_thread(lambda: database_id(engine))
        record = await in_thread(lambda: key_queries.find_key(engine, key_hash))
        if len(self._lookups) >= MAX_CACHED_KEYS:
            self._lookups.clear()
        self._lookups[key_hash] = (now + self.settings.key_cache_s, record)
        return record

    @staticmethod
    def verdict(record: KeyRecord | None) -> Verdict:
        if record is None:
            return "unknown"
        if record.revoked_at is not None:
            return "revoked"
        if record.expires_at is not None and record.expires_at <= datetime.now(UTC):
            return "expired"
        return "valid"

    # Limits.
    def item(self, rate: str) -> RateLimitItem:
        found = self._items.get(rate)
        if found is None:
            found = self._items[rate] = parse(rate)
        return found

    async def spend(self, item: RateLimitItem, *identity: str) -> Budget:
        """Count one request against `item` for `identity`; whether it was within the limit."""
        limiter = self.limiter
        allowed = await limiter.hit(item, self.namespace, *identity)
        stats = await limiter.get_window_stats(item, self.namespace, *identity)
        reset_s = max(0, math.ceil(stats.reset_time - time.time()))
        return Budget(allowed, item.amount, item.get_expiry(), stats.remaining, reset_s)

    async def failures_exhausted(self, address: str) -> Budget | None:
        """The failure budget of `address` when it has none left, else None."""
        if self._namespace is None:
            return None  # no lookup yet in this process: nothing counted under our name
        limiter = self.limiter
        if await limiter.test(self.failure_limit, self.namespace, "failed", address):
            return None
        stats = await limiter.get_window_stats(
            self.failure_limit, self.namespace, "failed", address
        )
        reset_s = max(1, math.ceil(stats.reset_time - time.time()))
        limit = self.failure_limit
        return Budget(False, limit.amount, limit.get_expiry(), 0, reset_s)

    async def record_failure(self, address: str) -> None:
        await self.limiter.hit(self.failure_limit, self.namespace, "failed", address)

    # Usage.
    def used(self, key_id: int) -> None:
        """Count a request made with `key_id`, to be written with the next flush."""
        now = datetime.now(UTC)
        usage = self._usage.get(key_id)
        if usage is None:
            self._usage[key_id] = Usage(1, now)
        else:
            usage.requests += 1
            usage.last_used_at = now

    async def flush(self) -> None:
        """Write the counts gathered since the last flush; on failure keep them for the next."""
        if not self._usage or self._engine is None:
            return
        pending, self._usage = self._usage, {}
        engine = self._engine
        try:
            await in_thread(lambda: key_queries.add_usage(engine, pending))
        except SQLAlchemyError as exc:
            log.warning("key usage not written, kept for the next flush: %s", type(exc).__name__)
            for key_id, usage in pending.items():
                later = self._usage.get(key_id)
                if later is not None:
                    usage.requests += later.requests
                    usage.last_used_at = later.last_used_at
                self._usage[key_id] = usage

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
    def limiter(self) -> FixedWindowRateLimiter:
        assert self._limiter is not None, "Keyring.start() runs in the app's lifespan"
        return self._limiter

    @property
    def namespace(self) -> str:
        return self._namespace or "-"
