"""API keys across live workers: revocation reaches every worker, Redis shares one budget,
and a key in a query string stays out of the logs. Keys are made with the real CLI."""

import time

import httpx
from typer.testing import CliRunner

from app.cli import cli
from tests.live import LiveServer, serve
from tests.test_keys import articles_url, new_key  # noqa: F401 - fixture

REDIS_URL = "redis://127.0.0.1:6379/0"
ON = {"CORPUS_AUTH": "keys"}


def statuses(server: LiveServer, key: str, n: int) -> list[int]:
    """`n` requests, each on a new connection, so that the workers share them."""
    return [
        httpx.get(f"{server.url}/v1/articles/1", headers={"X-API-Key": key}).status_code
        for _ in range(n)
    ]


def test_a_revoked_key_is_refused_by_every_worker_within_2s(articles_url: str) -> None:  # noqa: F811
    key = new_key(articles_url)
    with serve(articles_url, workers=2, env=ON) as server:
        assert set(statuses(server, key, 20)) == {200}
        prefix = key.split("_")[1]
        revoked = CliRunner().invoke(
            cli, ["keys", "revoke", prefix, "--database-url", articles_url]
        )
        assert revoked.exit_code == 0
        time.sleep(2)
        assert set(statuses(server, key, 20)) == {401}


def test_two_workers_share_one_budget_through_redis(articles_url: str) -> None:  # noqa: F811
    key = new_key(articles_url, "--rate", "10/minute")
    with serve(articles_url, workers=2, env={**ON, "CORPUS_REDIS_URL": REDIS_URL}) as server:
        answered = statuses(server, key, 30)
    assert answered.count(200) == 10
    assert answered.count(429) == 20


def test_a_key_in_the_query_string_never_reaches_the_log(articles_url: str) -> None:  # noqa: F811
    key = new_key(articles_url)
    secret = key.split("_", 2)[2]
    with serve(articles_url, env={**ON, "CORPUS_ACCESS_LOG": "true"}) as server:
        for query, status in (
            (f"limit=1&api_key={key}", 200),
            (f"api_key={key}&limit=many", 422),
            (f"api_key={key}x", 401),
        ):
            assert httpx.get(f"{server.url}/v1/articles?{query}").status_code == status
        log = server.log_when(lambda text: text.count('"path":"/v1/articles"') >= 3)
    assert log.count('"path":"/v1/articles"') == 3
    assert secret not in log
