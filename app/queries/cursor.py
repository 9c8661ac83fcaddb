"""Opaque, signed keyset cursors.

A cursor carries the sort key of the row it points past, the direction of travel and a
fingerprint of the filter and sort it was made under, signed with HMAC so that an altered
cursor is rejected rather than silently followed. It knows nothing of HTTP or SQL.
"""

import binascii
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import orjson

from app.errors import InvalidCursor

Direction = Literal["after", "before"]
KeyValue = int | str | float | None
_SIG_BYTES = 12
_KEY_TYPES = (int, str, float)
# base64url (RFC 4648 §5) from binascii: base64's wrappers cost twice as much here.
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


@dataclass(frozen=True, slots=True)
class Cursor:
    key: tuple[KeyValue, ...]
    direction: Direction
    fingerprint: str


def fingerprint(*parts: object) -> str:
    """A short stable digest of the filter and sort a cursor belongs to."""
    return hashlib.blake2b(orjson.dumps(parts), digest_size=8).hexdigest()


@lru_cache(maxsize=4)
def _keyed(secret: str) -> hmac.HMAC:
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def _signature(secret: str, payload: bytes) -> bytes:
    # A copy of the keyed state: the same bytes as hmac.digest(), without setting up the key
    # each time (up to three signatures a page: one checked, two made).
    mac = _keyed(secret).copy()
    mac.update(payload)
    return mac.digest()[:_SIG_BYTES]


def encode(cursor: Cursor, secret: str) -> str:
    """The token: base64url without padding, so every character is safe in a URL as is."""
    payload = orjson.dumps((cursor.key, cursor.direction[0], cursor.fingerprint))
    sig = _signature(secret, payload)
    text = binascii.b2a_base64(sig + payload, newline=False).translate(_TO_URLSAFE)
    return text.rstrip(b"=").decode("ascii")


def decode(token: str, secret: str, *, expected_fingerprint: str, key_arity: int) -> Cursor:
    """Parse and verify `token`; anything wrong with it raises InvalidCursor."""
    if len(token) > 2048:
        raise InvalidCursor("The cursor is too long to be one of ours.")
    try:
        padded = token.encode("ascii").translate(_FROM_URLSAFE) + b"=" * (-len(token) % 4)
        raw = binascii.a2b_base64(padded)
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidCursor("The cursor is not valid base64url.") from exc
    sig, payload = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
    good = _signature(secret, payload)
    if not payload or not hmac.compare_digest(sig, good):
        raise InvalidCursor("The cursor was altered or was not issued by this service.")
    try:
        key, direction, fp = orjson.loads(payload)
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise InvalidCursor("The cursor does not parse.") from exc
    if fp != expected_fingerprint:
        raise InvalidCursor(
            "The cursor was made for another filter or sort; start again without it."
        )
    if (
        type(key) is not list
        or len(key) != key_arity
        or direction not in ("a", "b")
        or not all(v is None or isinstance(v, _KEY_TYPES) for v in key)
    ):
        raise InvalidCursor("The cursor does not parse.")
    return Cursor(tuple(key), "after" if direction == "a" else "before", fp)
