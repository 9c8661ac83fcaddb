"""API keys and their rate limits (CORPUS_AUTH=keys), in process, on both backends: keys
made with the real CLI, requests through the whole middleware stack."""

import asyncio
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import orjson
import pytest
from sqlalchemy import Engine, event, text, update
from typer.testing import CliRunner

from app import models
from app.api import auth, keyring
from app.cli import cli
from app.db import make_engine
from app.main import create_app
from app.queries.keys import hash_key
from app.settings import Settings
from tests.factories import client_for, make_client, record, write_articles

pytestmark = pytest.mark.anyio
PROBLEM = "application/problem+json"


@pytest.fixture
def articles_url(database_url: str) -> str:
    write_articles(database_url, [record(i) for i in range(1, 8)])
    return database_url


def keys(database_url: str, *args: str) -> Any:
    """`corpus keys ARGS --json` and its parsed output."""
    result = CliRunner().invoke(cli, ["keys", *args, "--database-url", database_url, "--json"])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def new_key(database_url: str, *options: str) -> str:
    made = keys(database_url, "create", "--name", "tests", *options)
    key: str = made["key"]
    return key


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:article-corpus:problem:{slug}"
    assert body["status"] == status
    return body


async def test_without_the_setting_the_api_stays_open(articles_url: str) -> None:
    async with make_client(articles_url) as client:
        response = await client.get("/v1/articles")
    assert response.status_code == 200
    assert "ratelimit" not in response.headers


async def test_a_request_without_a_key_is_a_401_with_a_bearer_challenge(articles_url: str) -> None:
    async with make_client(articles_url, auth="keys") as client:
        for url in ("/v1/articles", "/v1/articles/1", "/v1/sources", "/v1/nowhere"):
            response = await client.get(url)
            assert_problem(response, 401, "key-required")
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_probes_docs_and_the_explorer_stay_public(articles_url: str) -> None:
    async with make_client(articles_url, auth="keys") as client:
        for url in ("/healthz", "/readyz", "/docs", "/openapi.json", "/"):
            response = await client.get(url)
            assert response.status_code == 200, url
            assert "ratelimit" not in response.headers


@pytest.mark.parametrize("way", ["bearer", "header", "query"])
async def test_each_way_of_sending_a_key_is_answered_with_rate_limit_headers(
    articles_url: str, way: str
) -> None:
    key = new_key(articles_url, "--rate", "50/minute")
    sent: dict[str, Any] = {
        "bearer": {"headers": {"Authorization": f"Bearer {key}"}},
        "header": {"headers": {"X-API-Key": key}},
        "query": {"params": {"api_key": key}},
    }[way]
    async with make_client(articles_url, auth="keys") as client:
        first = await client.get("/v1/articles/1", **sent)
        second = await client.get("/v1/articles/1", **sent)
    assert first.status_code == second.status_code == 200
    assert first.headers["ratelimit-policy"] == '"key";q=50;w=60'
    assert first.headers["ratelimit"].startswith('"key";r=49;t=')
    assert second.headers["ratelimit"].startswith('"key";r=48;t=')
    assert "Authorization, X-API-Key" in first.headers["vary"]  # no cache serves it keyless


async def test_a_key_in_the_query_string_never_reaches_links_or_problems(
    articles_url: str,
) -> None:
    key = new_key(articles_url)
    async with make_client(articles_url, auth="keys") as client:
        page = await client.get("/v1/articles", params={"limit": 2, "api_key": key})
        invalid = await client.get("/v1/articles", params={"limit": "many", "api_key": key})
        unknown = await client.get("/v1/articles", params={"api_key": key + "x"})
    assert page.status_code == 200
    assert page.json()["next"] is not None
    assert invalid.status_code == 422
    assert unknown.status_code == 401
    for response in (page, invalid, unknown):
        assert key not in response.text
        assert all(key not in value for value in response.headers.values())
    assert "limit=2" in page.headers["link"]


async def test_unknown_revoked_and_expired_keys_are_401s_that_say_which(
    articles_url: str,
) -> None:
    revoked = new_key(articles_url)
    prefix = revoked.split("_")[1]
    revoke = CliRunner().invoke(cli, ["keys", "revoke", prefix, "--database-url", articles_url])
    assert revoke.exit_code == 0
    expired = new_key(articles_url, "--expires", "2100-01-31")
    engine = make_engine(Settings(database_url=articles_url), pooled=False)
    with engine.begin() as connection:  # `--expires` refuses the past: time went by
        connection.execute(
            update(models.api_key_table)
            .where(models.api_key_table.c.prefix == expired.split("_")[1])
            .values(expires_at=datetime(2020, 1, 31, tzinfo=UTC))
        )
    engine.dispose()
    async with make_client(articles_url, auth="keys") as client:
        for key, slug in (
            ("ck_nothere_" + "x" * 43, "key-unknown"),
            (revoked, "key-revoked"),
            (expired, "key-expired"),
        ):
            response = await client.get("/v1/articles", headers={"X-API-Key": key})
            body = assert_problem(response, 401, slug)
            assert slug.split("-")[1] in body["detail"]
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_key_over_its_rate_gets_a_429_with_retry_after(articles_url: str) -> None:
    key = new_key(articles_url, "--rate", "3/minute")
    async with make_client(articles_url, auth="keys") as client:
        answers = [await client.get("/v1/articles/1", headers={"X-API-Key": key}) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    over = answers[-1]
    assert_problem(over, 429, "rate-limited")
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert over.headers["ratelimit-policy"] == '"key";q=3;w=60'
    assert over.headers["ratelimit"].startswith('"key";r=0;t=')


async def test_failed_keys_from_one_address_are_rate_limited(articles_url: str) -> None:
    good = new_key(articles_url)
    async with make_client(articles_url, auth="keys", auth_failure_rate="3/minute") as client:
        statuses = [
            (await client.get("/v1/articles", headers={"X-API-Key": f"guess-{n}"})).status_code
            for n in range(5)
        ]
        blocked = await client.get("/v1/articles", headers={"X-API-Key": good})
    assert statuses == [401, 401, 401, 429, 429]
    assert_problem(blocked, 429, "too-many-failed-keys")
    assert int(blocked.headers["retry-after"]) >= 1


async def test_keys_are_hashed_at_rest(articles_url: str, engine: Engine) -> None:
    made = keys(articles_url, "create", "--name", "partner")
    key, prefix = made["key"], made["prefix"]
    assert made["name"] == "partner"
    assert key.startswith(f"ck_{prefix}_")
    assert len(prefix) == 8
    assert len(key) >= 50
    with engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM api_key")).mappings().one()
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert all(key not in str(value) for value in row.values())


def statements(engine: Engine, containing: str) -> list[str]:
    """The statements `engine` runs from now on that contain `containing` (any case)."""
    found: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def count(*args: Any) -> None:
        if containing.upper() in args[2].upper():
            found.append(args[2])

    return found


async def test_usage_is_written_behind_in_batches(articles_url: str) -> None:
    key = new_key(articles_url)
    app = create_app(Settings(database_url=articles_url, auth="keys", usage_flush_s=30))
    async with client_for(app) as client:
        writes = statements(app.state.engine, "UPDATE api_key")
        for _ in range(12):
            assert (await client.get("/v1/articles/1", headers={"X-API-Key": key})).is_success
        assert writes == []  # nothing written per request
    assert len(writes) == 1  # one flush on shutdown, for all twelve
    (listed,) = keys(articles_url, "list")
    assert (listed["today"], listed["total"], listed["state"]) == (12, 12, "active")
    assert listed["last_used"] is not None


async def test_concurrent_requests_with_one_key_read_it_once(articles_url: str) -> None:
    """A key's lookup expires every key_cache_s: the requests in flight then share one read
    of it, rather than each reading it on a thread of its own."""
    key = new_key(articles_url)
    app = create_app(Settings(database_url=articles_url, auth="keys", key_cache_s=60))
    async with client_for(app) as client:
        reads = statements(app.state.engine, "FROM api_key")

        async def ask() -> int:
            response = await client.get("/v1/articles/1", headers={"X-API-Key": key})
            return response.status_code

        assert await asyncio.gather(*(ask() for _ in range(16))) == [200] * 16
        assert len(reads) == 1
        assert await ask() == 200  # cached now
        assert len(reads) == 1


async def test_a_caller_that_leaves_does_not_cancel_the_shared_lookup(articles_url: str) -> None:
    key = new_key(articles_url)
    app = create_app(Settings(database_url=articles_url, auth="keys"))
    async with client_for(app):
        ring: keyring.Keyring = app.state.keyring
        first = asyncio.ensure_future(ring.lookup(hash_key(key)))
        second = asyncio.ensure_future(ring.lookup(hash_key(key)))
        await asyncio.sleep(0)
        first.cancel()
        record = await second
    assert first.cancelled()
    assert record is not None
    assert ring.verdict(record) == "valid"


async def test_cors_preflights_need_no_key_and_401s_are_readable(articles_url: str) -> None:
    origin = "https://reader.example"
    async with make_client(articles_url, auth="keys", cors_allow_origins=[origin]) as client:
        preflight = await client.options(
            "/v1/articles",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization, x-api-key",
            },
        )
        refused = await client.get("/v1/articles", headers={"Origin": origin})
    assert preflight.status_code == 200
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "x-api-key" in allowed
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == origin
    exposed = refused.headers["access-control-expose-headers"]
    assert "RateLimit" in exposed.split(", ")
    assert "RateLimit-Policy" in exposed


def test_the_cli_lists_and_revokes_keys(articles_url: str) -> None:
    key = new_key(articles_url, "--rate", "10/second", "--expires", "2999-01-01")
    prefix = key.split("_")[1]
    runner = CliRunner()
    listed = runner.invoke(cli, ["keys", "list", "--database-url", articles_url])
    assert listed.exit_code == 0
    header, row = listed.stdout.splitlines()
    assert header.split() == [
        "prefix", "name", "rate", "created", "expires", "last_used", "today", "total", "state"
    ]  # fmt: skip
    assert row.split()[:3] == [prefix, "tests", "10/second"]
    assert "2999-01-01 00:00" in row
    assert row.split()[-1] == "active"
    revoked = runner.invoke(cli, ["keys", "revoke", prefix, "--database-url", articles_url])
    assert revoked.exit_code == 0
    (after,) = keys(articles_url, "list")
    assert after["state"] == "revoked"
    missing = runner.invoke(cli, ["keys", "revoke", "zzzzzzzz", "--database-url", articles_url])
    assert missing.exit_code == 2
    assert "No key with prefix zzzzzzzz" in missing.stderr
    bad_rate = runner.invoke(
        cli, ["keys", "create", "--name", "x", "--rate", "lots", "--database-url", articles_url]
    )
    assert bad_rate.exit_code == 2


async def test_two_apps_share_one_budget_through_redis(articles_url: str) -> None:
    key = new_key(articles_url, "--rate", "3/minute")
    shared: dict[str, Any] = {"auth": "keys", "redis_url": "redis://127.0.0.1:6379/0"}
    headers = {"X-API-Key": key}
    async with (
        make_client(articles_url, **shared) as one,
        make_client(articles_url, **shared) as two,
    ):
        answers = [
            (await one.get("/v1/articles/1", headers=headers)).status_code,
            (await two.get("/v1/articles/1", headers=headers)).status_code,
            (await one.get("/v1/articles/1", headers=headers)).status_code,
            (await two.get("/v1/articles/1", headers=headers)).status_code,
        ]
        last = await one.get("/v1/articles/1", headers=headers)
    assert answers == [200, 200, 200, 429]
    assert last.headers["ratelimit"].startswith('"key";r=0;')


async def test_an_unreachable_redis_is_a_503_not_an_open_door(articles_url: str) -> None:
    key = new_key(articles_url)
    settings: dict[str, Any] = {"auth": "keys", "redis_url": "redis://127.0.0.1:1/0"}
    async with make_client(articles_url, **settings) as client:
        response = await client.get("/v1/articles/1", headers={"X-API-Key": key})
    assert_problem(response, 503, "service-unavailable")
    assert response.headers["retry-after"]


async def test_a_key_lookup_without_a_database_is_a_503() -> None:
    """A server that cannot reach its database answers a key with a problem, not a 500."""
    unreachable = "postgresql://postgres@127.0.0.1:1/nowhere"
    async with make_client(unreachable, wait_for_index=False, auth="keys") as client:
        response = await client.get("/v1/articles", headers={"X-API-Key": "ck_x_y"})
    assert_problem(response, 503, "service-unavailable")
    assert response.headers["retry-after"]


@pytest.mark.parametrize("redis_url", [None, "redis://127.0.0.1:6379/0"], ids=["memory", "redis"])
async def test_the_reset_time_never_exceeds_the_window(
    articles_url: str, redis_url: str | None
) -> None:
    key = new_key(articles_url, "--rate", "600/minute")
    settings: dict[str, Any] = {"auth": "keys", "auth_failure_rate": "2/minute"}
    if redis_url:
        settings["redis_url"] = redis_url
    async with make_client(articles_url, **settings) as client:
        answers = [await client.get("/v1/articles/1", headers={"X-API-Key": key}) for _ in range(3)]
        failures = [await client.get("/v1/articles", headers={"X-API-Key": "no"}) for _ in range(3)]
    for response in answers:
        assert response.headers["ratelimit-policy"] == '"key";q=600;w=60'
        found = re.search(r";t=(\d+)$", response.headers["ratelimit"])
        assert found is not None
        assert 0 <= int(found.group(1)) <= 60, response.headers["ratelimit"]
    assert_problem(failures[-1], 429, "too-many-failed-keys")
    assert 1 <= int(failures[-1].headers["retry-after"]) <= 60


class _Ticking(datetime):
    """A clock that moves on a second each time it is read, from `start`."""

    start: ClassVar[datetime]
    reads: ClassVar[int] = 0

    @classmethod
    def now(cls, tz: Any = None) -> "_Ticking":
        cls.reads += 1
        moment = cls.start + timedelta(seconds=cls.reads)
        return cls.fromtimestamp(moment.timestamp(), tz=UTC)


async def test_a_key_that_expires_during_its_check_is_a_401_not_a_500(
    articles_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The moment a cached key expires: it was judged valid, then expired, in one request."""
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    key = new_key(articles_url, "--expires", expires.isoformat())
    _Ticking.start, _Ticking.reads = expires - timedelta(seconds=2.5), 0
    for module in (auth, keyring):
        monkeypatch.setattr(module, "datetime", _Ticking, raising=False)
    async with make_client(articles_url, auth="keys") as client:
        answers = [await client.get("/v1/articles/1", headers={"X-API-Key": key}) for _ in range(4)]
    statuses = [r.status_code for r in answers]
    assert statuses[0] == 200
    assert statuses[-1] == 401
    assert set(statuses) == {200, 401}
    for response in answers:
        if response.status_code == 401:
            assert_problem(response, 401, "key-expired")


async def test_a_percent_encoded_key_parameter_is_read_and_never_echoed(
    articles_url: str,
) -> None:
    key = new_key(articles_url)
    async with make_client(articles_url, auth="keys") as client:
        page = await client.get(f"/v1/articles?limit=2&api%5Fkey={key}")
        moved = await client.get(f"/v1/articles/?limit=2&api%5Fkey={key}")
    assert page.status_code == 200, page.text
    assert page.json()["next"].startswith("/v1/articles?limit=2&cursor=")
    assert moved.status_code == 307
    assert moved.headers["location"].endswith("/v1/articles?limit=2")
    for response in (page, moved):
        assert key not in response.text
        assert all(key not in value for value in response.headers.values())


async def test_in_process_counters_count_by_window_and_forget_expired_ones() -> None:
    now = [1000.0]
    counters = keyring.InProcessCounters(clock=lambda: now[0])
    assert [await counters.incr("a", 60) for _ in range(3)] == [1, 2, 3]
    assert await counters.incr("b", 10, amount=5) == 5
    assert await counters.get("a") == 3
    assert await counters.get_expiry("a") == 1060.0
    assert await counters.get("missing") == 0
    assert await counters.get_expiry("missing") == 1000.0
    now[0] = 1010.0  # b's window is over, a's is not
    assert await counters.get("b") == 0
    assert await counters.incr("a", 60) == 4
    assert await counters.incr("b", 10) == 1  # a new window, from now
    assert await counters.get_expiry("b") == 1020.0
    now[0] = 1100.0  # both over: a new counter sweeps the expired ones away
    assert await counters.incr("c", 60) == 1
    assert set(counters._counts) == {"c"}
