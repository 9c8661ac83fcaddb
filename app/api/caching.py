"""Validators and freshness for GET responses: a strong `ETag`, `If-None-Match` → 304, and
`Cache-Control`. Pure ASGI, placed inside the gzip middleware (see create_app).

The tag is an xxh3-128 digest of the body bytes the route already rendered, taken once as the
body passes through: nothing is rendered twice. Streaming responses (more than one body
message, such as exports) and non-200s pass through untagged. Because a strong tag must
differ per content-coding (RFC 9110 §8.8.3), a body that the gzip middleware will compress
gets the tag `"<digest>-gzip"`; both forms match on revalidation, as the content is the same.
"""

import re

import xxhash
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Bodies at least this large are gzipped when the client accepts it (create_app passes this
# to GZipMiddleware, and the tag suffix below must agree with that decision).
GZIP_MIN_SIZE = 1024
# Level 1: most of level 6's saving on JSON at well under its CPU cost.
GZIP_LEVEL = 1
GZIP_SUFFIX = "-gzip"
NO_STORE = b"no-store"

_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')


def entity_tag(body: bytes) -> str:
    """The opaque part of the strong validator for these bytes (without quotes or suffix)."""
    # Not a security digest, only a change detector, so the fastest good hash: it runs on
    # every 200 (bench/inprocess.py).
    return xxhash.xxh3_128_hexdigest(body)


def matches(if_none_match: str, digest: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match list against our digest, either coding."""
    if if_none_match.strip() == "*":
        return True
    return any(tag in (digest, digest + GZIP_SUFFIX) for tag in _ENTITY_TAG.findall(if_none_match))


class ConditionalGetMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_age_s: int, no_store_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.fresh = freshness(max_age_s)
        self.no_store_paths = no_store_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        if_none_match, accept_encoding = request_validators(scope)
        cache_control = NO_STORE if scope["path"] in self.no_store_paths else self.fresh
        start: Message | None = None
        passthrough = False

        async def send_tagged(message: Message) -> None:
            nonlocal start, passthrough
            if passthrough:
                await send(message)
            elif message["type"] == "http.response.start":
                if message["status"] == 200:
                    start = message  # held until the body shows whether it is one piece
                    return
                passthrough = True
                await send(with_default(message, b"cache-control", NO_STORE))
            elif start is not None and message["type"] == "http.response.body":
                passthrough = True
                if message.get("more_body", False):  # streamed: no tag, sent as it comes
                    await send(start)
                    await send(message)
                    return
                body: bytes = message.get("body", b"")
                reply = tagged(
                    start,
                    body,
                    accept_encoding=accept_encoding,
                    if_none_match=if_none_match,
                    cache_control=cache_control,
                )
                await send(reply)
                await send(message if reply["status"] == 200 else {**message, "body": b""})
            else:
                await send(message)

        await self.app(scope, receive, send_tagged)


def freshness(max_age_s: int) -> bytes:
    """Cache-Control for a 200 that is not a probe."""
    return (f"public, max-age={max_age_s}" if max_age_s > 0 else "no-cache").encode()


def request_validators(scope: Scope) -> tuple[str, str]:
    """The request's If-None-Match and Accept-Encoding (empty when absent)."""
    if_none_match = accept_encoding = ""
    for key, value in scope["headers"]:
        if key == b"if-none-match":
            if_none_match = value.decode("latin-1")
        elif key == b"accept-encoding":
            accept_encoding = value.decode("latin-1")
    return if_none_match, accept_encoding


def tagged(
    start: Message, body: bytes, *, accept_encoding: str, if_none_match: str, cache_control: bytes
) -> Message:
    """The response start for a complete 200 `body`: tagged and given Cache-Control, or
    turned into a 304 when `if_none_match` names its tag (then send no body)."""
    headers = list(start.get("headers", ()))
    names = {name.lower() for name, _ in headers}
    digest = entity_tag(body)
    gzipped = (
        "gzip" in accept_encoding
        and len(body) >= GZIP_MIN_SIZE
        and b"content-encoding" not in names
    )
    tag = f'"{digest}{GZIP_SUFFIX if gzipped else ""}"'.encode()
    if b"etag" not in names:
        headers.append((b"etag", tag))
    if b"cache-control" not in names:
        headers.append((b"cache-control", cache_control))
    if if_none_match and matches(if_none_match, digest):
        return _not_modified(headers, vary=len(body) >= GZIP_MIN_SIZE)
    return {**start, "headers": headers}


def with_default(message: Message, name: bytes, value: bytes) -> Message:
    headers = list(message.get("headers", ()))
    if all(key.lower() != name for key, _ in headers):
        headers.append((name, value))
    return {**message, "headers": headers}


def _not_modified(headers: list[tuple[bytes, bytes]], *, vary: bool) -> Message:
    """A 304 keeps the validator and cache headers of the 200 it stands for, and no body."""
    dropped = {b"content-length", b"content-type", b"link"}
    kept = [(k, v) for k, v in headers if k.lower() not in dropped]
    if vary and all(k.lower() != b"vary" for k, _ in kept):
        kept.append((b"vary", b"Accept-Encoding"))
    return {"type": "http.response.start", "status": 304, "headers": kept}
