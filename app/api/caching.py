"""Validators and freshness for GET responses: a strong `ETag`, `If-None-Match` → 304, and
`Cache-Control`, applied by the reply layer (app/api/replies.py).

The tag is an xxh3-128 digest of the body bytes the route already rendered, taken once as the
body passes through: nothing is rendered twice. Streaming responses (more than one body
message, such as exports) and non-200s pass through untagged. Because a strong tag must
differ per content-coding (RFC 9110 §8.8.3), a body that goes out gzipped gets the tag
`"<digest>-gzip"`; both forms match on revalidation, as the content is the same.
"""

import re

import xxhash
from starlette.types import Message, Scope

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


def not_modified(headers: list[tuple[bytes, bytes]], *, vary: bool) -> Message:
    """A 304 keeps the validator and cache headers of the 200 it stands for, and no body."""
    dropped = {b"content-length", b"content-type", b"link"}
    kept = [(k, v) for k, v in headers if k.lower() not in dropped]
    if vary and all(k.lower() != b"vary" for k, _ in kept):
        kept.append((b"vary", b"Accept-Encoding"))
    return {"type": "http.response.start", "status": 304, "headers": kept}
