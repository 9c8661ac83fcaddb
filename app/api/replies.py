"""What every reply passes through on its way out, in one pure-ASGI layer: HEAD answered as
GET, load shedding, validators (ETag, 304, Cache-Control) and gzip.

They were four middleware, each wrapping `send` and reading the same headers; the four
wrappers cost as much per request as an indexed read (bench/inprocess.py). Here one
wrapper holds the response start until the first body shows whether the reply is one
piece, then does what the four did, in their order:

- **HEAD** goes on as a GET (a copy of the scope), so routing, validators and gzip treat it
  as one and the headers come out the same, Content-Length and ETag included; the body is
  dropped on the way out. Routes that would compute a streamed body ask `is_head`.
- **Load shedding**: at most `gate.limit` requests under `/v1/` run at once (the pool's
  size); the rest wait in line, and one that waits longer than the queue timeout gets a
  fast 503 (app/api/shedding.py). A request gives its slot back when its response starts.
- **Validators**: a complete 200 to a GET gets a strong ETag (a digest of the body bytes,
  suffixed `-gzip` when it goes out compressed, RFC 9110 §8.8.3) and Cache-Control, and an
  `If-None-Match` naming it turns it into a 304 (app/api/caching.py). Streams pass untagged.
- **gzip** as Starlette's GZipMiddleware does it (same threshold rules, same Vary), for
  complete bodies and streams; a compressed complete body is kept by its digest, so a
  reply served again (a cached search) is not compressed again.
"""

import zlib
from collections import OrderedDict
from threading import Lock

import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.caching import (
    GZIP_LEVEL,
    GZIP_MIN_SIZE,
    GZIP_SUFFIX,
    NO_STORE,
    entity_tag,
    freshness,
    matches,
    not_modified,
    request_validators,
)
from app.api.shedding import Admission, Gate, send_shed

_HEAD_KEY = "head_request"
# Content types gzip leaves alone (Starlette's list): already compressed, or event streams.
_EXCLUDED = frozenset(
    {
        "application/grpc",
        "application/gzip",
        "application/x-gzip",
        "application/zip",
        "audio/*",
        "font/woff",
        "font/woff2",
        "image/avif",
        "image/gif",
        "image/jpeg",
        "image/png",
        "image/webp",
        "text/event-stream",
        "video/*",
    }
)
# Bodies this large are compressed on a worker thread, not on the event loop.
THREAD_MIN_BYTES = 128 * 1024
# Compressed bodies kept by digest: a few MB at most, the replies most served first.
KEPT_BYTES = 8 << 20
KEPT_MAX_BODY = 256 * 1024


def is_head(request: Request) -> bool:
    """Whether `request` came in as HEAD (it reaches the route as a GET)."""
    state = request.scope.get("state")
    return isinstance(state, dict) and state.get(_HEAD_KEY) is True


class _Compressed:
    """Gzipped complete bodies by digest, least recently used out first, by bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = Lock()

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            found = self._entries.get(digest)
            if found is not None:
                self._entries.move_to_end(digest)
            return found

    def put(self, digest: str, body: bytes) -> None:
        if len(body) > KEPT_MAX_BODY:
            return
        with self._lock:
            if digest in self._entries:
                return
            self._entries[digest] = body
            self._bytes += len(body)
            while self._bytes > self._max:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)


def _gzip(body: bytes) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


class ReplyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        gate: Gate,
        max_age_s: int,
        no_store_paths: frozenset[str] = frozenset(),
        gated_prefix: str = "/v1/",
    ) -> None:
        self.app = app
        self.gate = gate
        self.fresh = freshness(max_age_s)
        self.no_store_paths = no_store_paths
        self.gated_prefix = gated_prefix
        self.compressed = _Compressed(KEPT_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope.setdefault("state", {})[_HEAD_KEY] = True  # shared with the copy below
            scope = {**scope, "method": "GET"}
        reply = _Reply(self, scope, send, head=head)
        if scope["path"].startswith(self.gated_prefix):
            admission, receive = await self.gate.admit(receive)
            if admission is Admission.SHED:
                await send_shed(scope, reply.send)  # a reply like any other: no-store
                return
            if admission is Admission.GONE:
                return
            reply.holds_slot = True
        try:
            await self.app(scope, receive, reply.send)
        finally:
            if reply.holds_slot:
                self.gate.leave()


class _Reply:
    """One response on its way out (see the module docstring)."""

    __slots__ = (
        "cache_control",
        "compressor",
        "get",
        "gzip_ok",
        "head",
        "holds_slot",
        "if_none_match",
        "middleware",
        "send_next",
        "start",
        "streaming",
    )

    def __init__(
        self, middleware: ReplyMiddleware, scope: Scope, send: Send, *, head: bool
    ) -> None:
        self.middleware = middleware
        self.send_next = send
        self.head = head
        self.holds_slot = False  # a slot of the gate, given back when the response starts
        self.get = scope["method"] == "GET"
        self.if_none_match, accept_encoding = request_validators(scope)
        self.gzip_ok = "gzip" in accept_encoding
        no_store = scope["path"] in middleware.no_store_paths
        self.cache_control = NO_STORE if no_store else middleware.fresh
        self.start: Message | None = None
        self.streaming = False  # the start is sent; bodies follow as they come
        self.compressor: zlib._Compress | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.holds_slot:
                self.holds_slot = False
                self.middleware.gate.leave()
            self.start = message  # held until the first body shows its shape
            return
        if kind != "http.response.body":
            await self._forward(message)
            return
        if self.streaming:
            await self._stream(message)
            return
        start = self.start
        assert start is not None, "a body before its response start"
        self.start = None
        self.streaming = True
        if message.get("more_body", False):
            await self._begin_stream(start, message)
        else:
            await self._whole(start, message)

    async def _forward(self, message: Message) -> None:
        if self.start is not None:  # e.g. trailers or early hints: send what is held first
            await self.send_next(self.start)
            self.start = None
            self.streaming = True
        await self.send_next(message)

    async def _whole(self, start: Message, message: Message) -> None:
        """A reply in one piece: tag it, answer 304 when asked, compress it when it pays."""
        body: bytes = message.get("body", b"")
        status = start["status"]
        headers = list(start.get("headers", ()))
        names = {name.lower() for name, _ in headers}
        compressible = self._compressible(names, headers, status)
        large = len(body) >= GZIP_MIN_SIZE and compressible
        gzipped = large and self.gzip_ok
        if status == 200 and self.get:
            digest = entity_tag(body)
            if b"etag" not in names:
                tag = f'"{digest}{GZIP_SUFFIX if gzipped else ""}"'.encode()
                headers.append((b"etag", tag))
            if b"cache-control" not in names:
                headers.append((b"cache-control", self.cache_control))
            if self.if_none_match and matches(self.if_none_match, digest):
                await self.send_next(not_modified(headers, vary=len(body) >= GZIP_MIN_SIZE))
                await self.send_next({"type": "http.response.body", "body": b""})
                return
            if gzipped:
                body = await self._compressed_body(digest, body)
        else:
            if b"cache-control" not in names:
                headers.append((b"cache-control", NO_STORE))
            if gzipped:
                body = await self._compress_whole(body)
        if large:
            _add_vary(headers)
        if gzipped:
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers += [
                (b"content-encoding", b"gzip"),
                (b"content-length", str(len(body)).encode()),
            ]
        await self.send_next({**start, "headers": headers})
        await self.send_next({**message, "body": b"" if self.head else body})

    async def _compressed_body(self, digest: str, body: bytes) -> bytes:
        kept = self.middleware.compressed.get(digest)
        if kept is None:
            kept = await self._compress_whole(body)
            self.middleware.compressed.put(digest, kept)
        return kept

    @staticmethod
    async def _compress_whole(body: bytes) -> bytes:
        if len(body) >= THREAD_MIN_BYTES:
            return await anyio.to_thread.run_sync(_gzip, body)
        return _gzip(body)

    async def _begin_stream(self, start: Message, message: Message) -> None:
        """The first piece of a streamed reply: untagged, compressed piece by piece."""
        headers = list(start.get("headers", ()))
        names = {name.lower() for name, _ in headers}
        if self._compressible(names, headers, start["status"]):
            _add_vary(headers)
            if self.gzip_ok:
                self.compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
                headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
                headers.append((b"content-encoding", b"gzip"))
        await self.send_next({**start, "headers": headers})
        await self._stream(message)

    async def _stream(self, message: Message) -> None:
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        compressor = self.compressor
        if compressor is not None:
            if len(body) >= THREAD_MIN_BYTES:
                body = await anyio.to_thread.run_sync(_piece, compressor, body, more)
            else:
                body = _piece(compressor, body, more)
        await self.send_next({**message, "body": b"" if self.head else body})

    @staticmethod
    def _compressible(names: set[bytes], headers: list[tuple[bytes, bytes]], status: int) -> bool:
        if b"content-encoding" in names or status == 206:
            return False
        media = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        media_type = media.decode("latin-1").partition(";")[0].strip().lower()
        return media_type not in _EXCLUDED and media_type.partition("/")[0] + "/*" not in _EXCLUDED


def _piece(compressor: "zlib._Compress", body: bytes, more: bool) -> bytes:
    if more:
        return compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return compressor.compress(body) + compressor.flush()


def _add_vary(headers: list[tuple[bytes, bytes]]) -> None:
    """Add Accept-Encoding to Vary (as Starlette's MutableHeaders.add_vary_header does)."""
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            if b"accept-encoding" not in value.lower():
                headers[i] = (name, value + b", Accept-Encoding")
            return
    headers.append((b"vary", b"Accept-Encoding"))
