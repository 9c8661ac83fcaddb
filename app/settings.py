"""The one Settings class. Built at the edges (create_app, each CLI command) and passed down."""

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///data/corpus.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CORPUS_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # Also accept a bare DATABASE_URL: compose files and hosts already set that name.
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("database_url", "CORPUS_DATABASE_URL", "DATABASE_URL"),
    )
    pool_size: int = Field(default=8, ge=1)
    pool_max_overflow: int = Field(default=4, ge=0)
    pool_timeout_s: float = Field(default=3.0, gt=0)
    connect_timeout_s: int = Field(default=3, ge=1)
    statement_timeout_ms: int = Field(default=5_000, ge=0)
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    # Signs pagination cursors so a tampered cursor is a 400, not a silent jump.
    cursor_secret: str = "article-corpus-cursor-v1"

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        """Point bare postgres URLs at psycopg 3, the driver we ship."""
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value
