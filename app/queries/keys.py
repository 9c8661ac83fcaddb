"""API keys in the database: made, listed, revoked, looked up by hash, and their usage
added in batches. Takes an Engine or a Session; knows nothing of HTTP.

A key reads `ck_<prefix>_<secret>`: the prefix (8 characters) is public and names the key
in lists; the secret carries 256 random bits. The table holds only the SHA-256 of the whole
key: with that much entropy a plain hash cannot be reversed by guessing, and it costs a
microsecond where a password hash would cost milliseconds on every request.
"""

import hashlib
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, case, select, update
from sqlmodel import Session

from app import models
from app.errors import NotFound

KEY_SCHEME = "ck"
PREFIX_CHARS = 8
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits


def hash_key(key: str) -> str:
    """What the table stores for `key`."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its public prefix."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_CHARS))
    return f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def prefix_of(given: str) -> str | None:
    """The prefix named by `given`: a prefix itself, or a whole key (`ck_<prefix>_<secret>`);
    None when it is neither."""
    scheme, _, rest = given.partition("_")
    if scheme == KEY_SCHEME and rest:
        given = rest.partition("_")[0]
    if len(given) == PREFIX_CHARS and all(c in _PREFIX_ALPHABET for c in given):
        return given
    return None


@dataclass(frozen=True)
class KeyRecord:
    """What a server needs to decide on a request: no hash, no usage."""

    key_id: int
    prefix: str
    rate: str
    expires_at: datetime | None
    revoked_at: datetime | None


def create_key(
    session: Session, *, name: str, rate: str, expires_at: datetime | None
) -> tuple[str, models.ApiKey]:
    """Store a new key; returns the key itself (never stored) and its row."""
    key, prefix = new_key()
    row = models.ApiKey(
        prefix=prefix,
        key_hash=hash_key(key),
        name=name,
        rate=rate,
        created_at=datetime.now(UTC),
        expires_at=expires_at,
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return key, row


def list_keys(session: Session) -> Sequence[models.ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return session.scalars(select(models.ApiKey).order_by(models.api_key_table.c.key_id)).all()


def revoke_key(session: Session, prefix: str) -> models.ApiKey:
    """Mark the key with `prefix` revoked (again is harmless); raises NotFound."""
    query = select(models.ApiKey).where(models.api_key_table.c.prefix == prefix)
    key = session.scalars(query).first()
    if key is None:
        raise NotFound(f"No key with prefix {prefix}.")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        session.add(key)
        session.commit()
        session.refresh(key)
    return key


def find_key(engine: Engine, key_hash: str) -> KeyRecord | None:
    """The key whose hash is `key_hash`, or None."""
    table = models.api_key_table
    query = select(
        table.c.key_id, table.c.prefix, table.c.rate, table.c.expires_at, table.c.revoked_at
    ).where(table.c.key_hash == key_hash)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return None if row is None else KeyRecord(*row)


@dataclass
class Usage:
    """Requests made with one key since the last write, and when the last one came."""

    requests: int
    last_used_s: float  # epoch seconds: time.time() is the cheapest clock per request


def add_usage(engine: Engine, usage: Mapping[int, Usage]) -> None:
    """Add counts to their keys in one transaction; a key's day count restarts each UTC day."""
    table = models.api_key_table
    with engine.begin() as connection:
        for key_id, used in usage.items():
            last_used_at = datetime.fromtimestamp(used.last_used_s, UTC)
            day = last_used_at.date().isoformat()
            connection.execute(
                update(table)
                .where(table.c.key_id == key_id)
                .values(
                    requests_total=table.c.requests_total + used.requests,
                    requests_today=case(
                        (table.c.usage_day == day, table.c.requests_today + used.requests),
                        else_=used.requests,
                    ),
                    usage_day=day,
                    last_used_at=last_used_at,
                )
            )
