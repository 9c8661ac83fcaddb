"""ETag, If-None-Match → 304, Cache-Control and gzip, over ASGI on both backends."""

import gzip
import time

import anyio
import httpx
import pytest

from app.api.caching import GZIP_MIN_SIZE, matches

pytestmark = pytest.mark.anyio

SEED_ID = 166812  # its body is about 5 KB: big enough to be gzipped
SMALL_ID = 8


async def get(client: httpx.AsyncClient, url: str, **headers: str) -> httpx.Response:
    # httpx asks for gzip by default; these tests choose the coding themselves.
    return await client.get(url, headers={"Accept-Encoding": "identity", **headers})


async def test_every_get_carries_a_strong_etag_and_public_cache_control(
    seeded: httpx.AsyncClient,
) -> None:
    for url in ("/v1/articles/8", "/v1/sources", "/v1/sources/2", "/openapi.json"):
        response = await get(seeded, url)
        assert response.status_code == 200, url
        assert response.headers["etag"].startswith('"'), url
        assert not response.headers["etag"].startswith("W/"), url
        assert response.headers["cache-control"] == "public, max-age=30", url


async def test_etag_follows_the_data(seeded: httpx.AsyncClient) -> None:
    first = await get(seeded, f"/v1/articles/{SMALL_ID}")
    again = await get(seeded, f"/v1/articles/{SMALL_ID}")
    other = await get(seeded, "/v1/articles/16")
    assert first.headers["etag"] == again.headers["etag"]
    assert first.headers["etag"] != other.headers["etag"]


@pytest.mark.parametrize(
    "template",
    ["{tag}", "W/{tag}", '"nope", {tag}', '"a", W/"b",{tag}', "*"],
)
async def test_if_none_match_gives_304_without_a_body(
    seeded: httpx.AsyncClient, template: str
) -> None:
    url = f"/v1/articles/{SMALL_ID}"
    tag = (await get(seeded, url)).headers["etag"]
    response = await get(seeded, url, **{"If-None-Match": template.format(tag=tag)})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == tag
    assert response.headers["cache-control"] == "public, max-age=30"
    assert "content-type" not in response.headers
    assert response.headers["x-request-id"]


async def test_a_stale_tag_gets_the_full_response(seeded: httpx.AsyncClient) -> None:
    response = await get(seeded, f"/v1/articles/{SMALL_ID}", **{"If-None-Match": '"stale"'})
    assert response.status_code == 200
    assert response.json()["article_id"] == SMALL_ID


async def test_errors_and_probes_are_never_stored(seeded: httpx.AsyncClient) -> None:
    for url, status in (("/v1/articles/999999", 404), ("/v1/sources/0", 422), ("/healthz", 200)):
        response = await get(seeded, url)
        assert response.status_code == status, url
        assert response.headers["cache-control"] == "no-store", url
    assert "etag" not in (await get(seeded, "/v1/articles/999999")).headers


async def test_large_bodies_are_gzipped_with_their_own_tag(seeded: httpx.AsyncClient) -> None:
    url = f"/v1/articles/{SEED_ID}"
    plain = await get(seeded, url)
    zipped = await get(seeded, url, **{"Accept-Encoding": "gzip"})
    assert len(plain.content) >= GZIP_MIN_SIZE
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.json() == plain.json()  # httpx decodes the gzip body
    assert int(zipped.headers["content-length"]) < len(plain.content)
    assert "Accept-Encoding" in zipped.headers["vary"]
    assert "Accept-Encoding" in plain.headers["vary"]
    # A strong validator differs per content-coding (RFC 9110 8.8.3).
    assert zipped.headers["etag"] == plain.headers["etag"][:-1] + '-gzip"'
    revalidated = await get(
        seeded, url, **{"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]}
    )
    assert revalidated.status_code == 304
    assert revalidated.headers["etag"] == zipped.headers["etag"]


async def test_small_bodies_are_not_gzipped(seeded: httpx.AsyncClient) -> None:
    response = await get(seeded, "/v1/sources/2", **{"Accept-Encoding": "gzip"})
    assert len(response.content) < GZIP_MIN_SIZE
    assert "content-encoding" not in response.headers
    assert not response.headers["etag"].endswith('-gzip"')


async def test_gzip_is_deterministic_so_tags_are_stable(seeded: httpx.AsyncClient) -> None:
    """The same content gives the same compressed bytes, so one strong tag stays true."""
    url = f"/v1/articles/{SEED_ID}"
    raw: list[bytes] = []
    tags: list[str] = []
    for _ in range(2):
        await anyio.sleep(1.01 - time.time() % 1)  # gzip's header holds a time in seconds
        async with seeded.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as response:
            raw.append(b"".join([chunk async for chunk in response.aiter_raw()]))
            tags.append(response.headers["etag"])
    assert raw[0] == raw[1]
    assert tags[0] == tags[1]
    assert gzip.decompress(raw[0]).startswith(b'{"article_id":166812')


def test_weak_comparison_accepts_either_coding_and_w_prefix() -> None:
    assert matches('W/"abc"', "abc")
    assert matches('"abc-gzip"', "abc")
    assert matches("*", "abc")
    assert matches('"x", "abc"', "abc")
    assert not matches('"abcd"', "abc")
    assert not matches("abc", "abc")  # unquoted is not an entity tag
