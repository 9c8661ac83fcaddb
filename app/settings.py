"""The one Settings class. Built at the edges (create_app, each CLI command) and passed down."""

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///data/corpus.db"
# A record whose content is larger is rejected by ingest: real articles stay far below it,
# and one huge body would cost every request that touches it (`corpus ingest --help`).
DEFAULT_MAX_CONTENT_BYTES = 1 << 20
# The corpus languages search can stem (ISO 639-1: the Snowball stemmers tantivy ships), or
# `none`: every word as written, whatever its language (app/search/analysis.py).
Language = Literal[
    "ar", "da", "de", "el", "en", "es", "fi", "fr", "hu", "it", "nl", "no", "pt", "ro", "ru",
    "sv", "ta", "tr", "none",
]  # fmt: skip


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CORPUS_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # Also accept a bare DATABASE_URL: compose files and hosts already set that name.
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("database_url", "CORPUS_DATABASE_URL", "DATABASE_URL"),
    )
    # Where the API's own writes (API key usage counts) go when `database_url` is a read
    # replica; unset, a host on a replica skips them (one warning in the log).
    primary_database_url: str | None = None
    # /readyz answers 503 when the database is a replica further behind its primary than
    # this; unset, it only reports the lag.
    replica_max_lag_s: float | None = Field(default=None, gt=0)
    pool_size: int = Field(default=8, ge=1)
    pool_max_overflow: int = Field(default=4, ge=0)
    pool_timeout_s: float = Field(default=3.0, gt=0)
    connect_timeout_s: int = Field(default=3, ge=1)
    statement_timeout_ms: int = Field(default=5_000, ge=0)
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    # Ingest: the largest `content` a record may carry, in UTF-8 bytes (`--max-content-bytes`).
    ingest_max_content_bytes: int = Field(default=DEFAULT_MAX_CONTENT_BYTES, ge=1)
    # Signs pagination cursors so a tampered cursor is a 400, not a silent jump. Unset, the
    # database's own random secret (corpus_meta, migration 0008) signs them.
    cursor_secret: str | None = None

    # Access control (app/api/auth.py): "off" leaves the API open; "keys" requires an API key
    # on every /v1 request. Limits count in this process, or in Redis when redis_url is set
    # (then every worker and host shares one budget per key).
    auth: Literal["off", "keys"] = "off"
    redis_url: str | None = None
    # A new key's rate unless `corpus keys create --rate` says otherwise ("N/second|minute|..."),
    # and how many failed keys one client address may send before it waits.
    default_key_rate: str = "600/minute"
    auth_failure_rate: str = "20/minute"
    # How long a server trusts what it read about a key (a revocation takes this long at
    # most), and how often it writes usage counts.
    key_cache_s: float = Field(default=1.0, gt=0)
    usage_flush_s: float = Field(default=1.0, gt=0)

    # Browsers: origins allowed to call the API from scripts (comma-separated); none by default.
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices(
            "cors_allow_origins", "CORPUS_CORS_ALLOW_ORIGINS", "CORS_ALLOW_ORIGINS"
        ),
    )
    # Caches: how long a client or proxy may reuse a 200 without revalidating.
    cache_max_age_s: int = Field(default=30, ge=0)
    # Logs: one access line per request, as text or as JSON lines. `access_log` unset follows
    # uvicorn's --access-log/--no-access-log, our line (with the request id) replacing its own.
    log_format: Literal["text", "json"] = "text"
    access_log: bool | None = None
    # Load shedding: /v1 requests beyond this many in flight wait in a queue, and get a 503
    # with Retry-After after queue_timeout_s. Default: the pool's size plus its overflow.
    max_concurrent_requests: int | None = Field(default=None, ge=1)
    queue_timeout_s: float = Field(default=2.0, gt=0)
    # The search index (app/search/): its folder, derived from the database when unset;
    # where PostgreSQL databases' folders go; and how often a server looks for new writes.
    index_dir: str | None = None
    index_root: str = "data/index"
    index_poll_s: float = Field(default=0.5, gt=0)
    # Search by meaning (app/search/embedder.py): `wordllama` (its weights ship in its
    # wheel), `wordllama:64|128`, `sentence-transformers:<folder>`, or `none` (off). The
    # vector index beside the search index is rebuilt when this changes.
    embedder: str = "wordllama"
    # The language whose word forms search finds (`Wahl` finds `Wahlen` with `de`): the
    # analyzer of the search index, recorded in it; a change rebuilds the index.
    language: Language = "en"
    # Lists and details are served by plain routes that skip FastAPI's per-route work
    # (app/api/fastpath.py), inside the same middleware. Off, FastAPI's routes serve them:
    # the same responses, more CPU per request.
    fast_reads: bool = True
    # FastAPI's own OpenTelemetry spans, metrics and logs, for a process whose providers are
    # configured (e.g. run under `opentelemetry-instrument`). Off, FastAPI skips the check
    # for configured providers that it otherwise makes on every request. On, fast_reads is
    # ignored: FastAPI's routes serve every request, and open their spans.
    opentelemetry: bool = False

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """`https://a.example, https://b.example` from the environment becomes a list."""
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @property
    def request_concurrency(self) -> int:
        """In-flight /v1 requests per process: no more than the pool can serve at once."""
        return self.max_concurrent_requests or self.pool_size + self.pool_max_overflow

    @field_validator("database_url", "primary_database_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        """Point bare postgres URLs at psycopg 3, the driver we ship."""
        if value is None:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value
