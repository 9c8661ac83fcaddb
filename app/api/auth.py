"""API keys and per-key rate limits (`CORPUS_AUTH=keys`): pure ASGI, inside CORS so that
browsers can read its answers, outside everything that does work.

Every request under `/v1` needs a key: `Authorization: Bearer KEY`, `X-API-Key: KEY`, or
`api_key=KEY` in the query string for clients that cannot set headers. That parameter is
cut out of the query string here, before anything downstream (routes, Link URLs, problem
bodies, access logs) can see it. Everything else (probes, docs, the explorer) and CORS
preflights pass untouched.

Answers: no key or an unknown one is a 401 with `WWW-Authenticate: Bearer`; a revoked or
expired key a 401 that says which; a key over its rate a 429 with `Retry-After`. Every
answer to a key carries the IETF `RateLimit-Policy` and `RateLimit` headers
(draft-ietf-httpapi-ratelimit-headers). Failed keys count against the client's address,
and an address out of that budget gets 429s without a lookup. The key itself is never
logged, echoed or stored; keyring.py keeps what is known about keys between requests.
"""

import functools
from datetime import UTC, datetime
from urllib.parse import unquote, unquote_plus

from limits.errors import StorageError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.keyring import Budget, Keyring
from app.api.problems import DATABASE_OUTAGES, DATABASE_UNAVAILABLE, send_problem
from app.queries.keys import hash_key

API_KEY_HEADER = "X-API-Key"
API_KEY_PARAMETER = "api_key"
RATE_LIMIT_HEADERS = ["RateLimit-Policy", "RateLimit"]
_AUTHORIZATION = b"authorization"
_X_API_KEY = API_KEY_HEADER.lower().encode()
_PREFLIGHT = b"access-control-request-method"
_PARAMETER = API_KEY_PARAMETER.encode()
_CHALLENGE = (b"www-authenticate", b'Bearer realm="article-corpus"')
# A cache (the browser's, a proxy) must not give a keyed answer to a request without the key.
_VARY = (b"vary", f"Authorization, {API_KEY_HEADER}".encode())
_WHY = {
    "unknown": ("key-unknown", "Unknown API key", "The API key is unknown here."),
    "revoked": ("key-revoked", "API key revoked", "The API key has been revoked."),
    "expired": ("key-expired", "API key expired", "The API key has expired."),
}


def take_query_key(scope: Scope) -> str | None:
    """The `api_key` query parameter's value, which it removes from `scope` in place (the
    server's own access log reads the same scope). Names are matched once decoded, as
    Starlette reads them: `api%5Fkey` is `api_key`."""
    query: bytes = scope["query_string"]
    if _PARAMETER not in query and b"%" not in query:
        return None
    found = None
    kept = []
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if unquote_plus(name.decode("latin-1")) == API_KEY_PARAMETER:
            found = unquote(value.decode("latin-1").replace("+", " "))
        else:
            kept.append(part)
    scope["query_string"] = b"&".join(kept)
    return found


def presented_key(scope: Scope) -> str | None:
    """The key the request carries, header first; the query parameter is removed either way."""
    from_query = take_query_key(scope)
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == _X_API_KEY:
            return value.decode("latin-1").strip()
        if name == _AUTHORIZATION:
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return credentials.strip()
    return from_query or None


def budget_headers(budget: Budget) -> list[tuple[bytes, bytes]]:
    state = f'"key";r={budget.remaining};t={budget.reset_s}'.encode()
    return [(b"ratelimit-policy", _policy(budget.quota, budget.window_s)), (b"ratelimit", state)]


@functools.lru_cache(maxsize=256)
def _policy(quota: int, window_s: int) -> bytes:
    return f'"key";q={quota};w={window_s}'.encode()


def is_protected(scope: Scope) -> bool:
    path: str = scope["path"]
    if not (path == "/v1" or path.startswith("/v1/")):
        return False
    if scope["method"] == "OPTIONS":
        return not any(name == _PREFLIGHT for name, _ in scope["headers"])
    return True


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, keyring: Keyring) -> None:
        self.app = app
        self.keyring = keyring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_protected(scope):
            await self.app(scope, receive, send)
            return
        try:
            headers = await self._admit(scope, send)
        except (StorageError, *DATABASE_OUTAGES) as exc:
            # Outside FastAPI's handlers: a failed key lookup or count is answered here.
            detail = (
                "The rate limiter's store is unreachable; retry shortly."
                if isinstance(exc, StorageError)
                else DATABASE_UNAVAILABLE
            )
            await send_problem(
                scope, send, 503, detail, slug="service-unavailable", title="Service unavailable"
            )
            return
        if headers is None:
            return  # answered: 401 or 429

        async def send_with_budget(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_budget)

    async def _admit(self, scope: Scope, send: Send) -> list[tuple[bytes, bytes]] | None:
        """The headers to add to the answer of an admitted request; None once a refusal
        has been sent."""
        keyring = self.keyring
        key = presented_key(scope)
        if not key:
            detail = (
                f"An API key is required: send `Authorization: Bearer KEY` "
                f"or `{API_KEY_HEADER}: KEY`."
            )
            await send_problem(
                scope,
                send,
                401,
                detail,
                slug="key-required",
                title="API key required",
                headers=[_CHALLENGE],
            )
            return None
        key_hash = hash_key(key)
        known, record = keyring.cached(key_hash)
        # One moment for the whole check: a key that expires during it is judged once.
        now = datetime.now(UTC)
        client = scope.get("client")
        address = str(client[0]) if client else "-"
        if not known or keyring.verdict(record, now) != "valid":
            # Only a key not known to be good costs a look at the address's failures.
            blocked = await keyring.failures_exhausted(address)
            if blocked is not None:
                await _too_many_failures(scope, send, blocked)
                return None
            if not known:
                record = await keyring.lookup(key_hash)
        verdict = keyring.verdict(record, now)
        if record is None or verdict != "valid":
            await keyring.record_failure(address)
            slug, title, detail = _WHY[verdict]
            await send_problem(
                scope, send, 401, detail, slug=slug, title=title, headers=[_CHALLENGE]
            )
            return None
        budget = await keyring.spend(record.rate, record.prefix)
        headers = [*budget_headers(budget), _VARY]
        if not budget.allowed:
            detail = f"This key's rate is {record.rate}; retry after {budget.reset_s} s."
            await send_problem(
                scope,
                send,
                429,
                detail,
                slug="rate-limited",
                title="Too many requests",
                headers=[*headers, (b"retry-after", str(max(1, budget.reset_s)).encode())],
            )
            return None
        keyring.used(record.key_id)
        return headers


async def _too_many_failures(scope: Scope, send: Send, budget: Budget) -> None:
    await send_problem(
        scope,
        send,
        429,
        f"Too many failed API keys from this address; retry after {budget.reset_s} s.",
        slug="too-many-failed-keys",
        title="Too many failed keys",
        headers=[(b"retry-after", str(budget.reset_s).encode())],
    )
