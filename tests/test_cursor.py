"""The cursor codec (app/queries/cursor.py): round trips, tampering, and URL-safe tokens."""

import base64
import hashlib
import hmac
import re
from urllib.parse import quote_plus

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import InvalidCursor
from app.queries.cursor import Cursor, decode, encode
from tests.factories import cursor_secret, make_client, record, write_articles

SECRET = "test-secret"
FP = "0123456789abcdef"
keys = st.tuples(
    st.one_of(
        st.none(),
        st.integers(-(2**63), 2**63 - 1),
        st.text(max_size=40),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    st.integers(0, 2**63 - 1),
)


@given(key=keys, direction=st.sampled_from(["after", "before"]))
def test_tokens_round_trip_and_need_no_escaping_in_a_url(
    key: tuple[object, int], direction: str
) -> None:
    cursor = Cursor(key, direction, FP)  # type: ignore[arg-type]
    token = encode(cursor, SECRET)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert quote_plus(token) == token
    assert decode(token, SECRET, expected_fingerprint=FP, key_arity=2) == cursor


def test_the_token_is_the_documented_layout() -> None:
    """HMAC-SHA256 (first 12 bytes) of the JSON payload, then the payload, in base64url:
    tokens issued before a release stay valid after it."""
    token = encode(Cursor((42,), "after", FP), SECRET)
    payload = orjson.dumps([[42], "a", FP])
    sig = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()[:12]
    assert token == base64.urlsafe_b64encode(sig + payload).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    ["", "!!!!", "é", "a" * 3000, encode(Cursor((1,), "after", FP), "other-secret")],
)
def test_bad_tokens_are_invalid_cursors(token: str) -> None:
    with pytest.raises(InvalidCursor):
        decode(token, SECRET, expected_fingerprint=FP, key_arity=1)


def test_an_altered_token_is_refused() -> None:
    token = encode(Cursor((7,), "after", FP), SECRET)
    altered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(InvalidCursor):
        decode(altered, SECRET, expected_fingerprint=FP, key_arity=1)


@pytest.mark.anyio
async def test_cursors_are_signed_with_the_databases_own_secret(database_url: str) -> None:
    """Unconfigured, the secret is the database's random one (migration 0008): a cursor
    signed with the old public default is refused, and one from another app on the same
    database is honoured."""
    write_articles(database_url, [record(i) for i in range(1, 6)])
    secret = cursor_secret(database_url)
    assert len(secret) >= 40
    assert secret != "article-corpus-cursor-v1"
    async with make_client(database_url) as first:
        next_url = (await first.get("/v1/articles", params={"limit": 2})).json()["next"]
    async with make_client(database_url) as second:
        assert (await second.get(next_url)).status_code == 200
        token = next_url.split("cursor=")[1]
        payload = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))[12:]
        public = hmac.new(b"article-corpus-cursor-v1", payload, hashlib.sha256).digest()[:12]
        forged = base64.urlsafe_b64encode(public + payload).rstrip(b"=").decode()
        response = await second.get("/v1/articles", params={"limit": 2, "cursor": forged})
        assert response.status_code == 400
