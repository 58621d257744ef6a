"""Client credentials tokens (RFC 6749 §4.4): discovery (RFC 8414), client authentication, retries and caching.

Client authentication: client_secret_basic / client_secret_post (RFC 6749 §2.3.1) and private_key_jwt
(RFC 7523 §2.2). Error bodies (RFC 6749 §5.2) become the typed exceptions of `m2m_auth.errors`.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import random
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

from m2m_auth.client.cache import AsyncSingleFlight, CacheKey, SyncSingleFlight, TokenCache, cache_key
from m2m_auth.errors import OAuthError, error_for_code

__all__ = ["Token", "TokenClient", "AsyncTokenClient", "AuthMethod"]

log = logging.getLogger("m2m_auth.client")

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = (
    60  # seconds; a short life keeps a leaked assertion nearly useless (the server also refuses replays)
)
_KEY_TYPE_BY_ALG = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "EdDSA": "OKP",
    "Ed25519": "OKP",  # RFC 9864's name for EdDSA over Ed25519; joserfc 1.8 prefers it
}
PrivateKey = RSAKey | ECKey | OKPKey

BACKOFF_BASE = 0.2  # seconds: full jitter, attempt n waits uniform(0, min(cap, base * 2**n))
BACKOFF_CAP = 5.0
RETRY_AFTER_CAP = 10.0  # a Retry-After is honoured up to this many seconds, so a caller is never parked for minutes
STALE_RETRY_INTERVAL = 5.0  # after a failed refresh, a still-valid token is served this long before the next try
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DISCOVERY_PATH = "/.well-known/oauth-authorization-server"


@dataclass(frozen=True)
class Token:
    """An access token and what the server said about it.

    Attributes:
        access_token: The token itself (left out of repr so that it does not end up in logs).
        token_type: "Bearer".
        expires_at: Expiry as seconds since the epoch (of the client's clock), from `expires_in`.
        scope: The granted scope, or the requested one when the server did not name it (RFC 6749 §5.1).
    """

    access_token: str = field(repr=False)
    token_type: str
    expires_at: float
    scope: str | None = None


def _transient(exc: BaseException) -> bool:
    """Failures after which a still-valid cached token keeps being served: network errors, 5xx, 429."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, OAuthError) and (exc.status >= 500 or exc.status == 429)


def _error_from_response(response: httpx.Response) -> OAuthError:
    """An RFC 6749 §5.2 error body as a typed exception (a generic one when the body is not an OAuth error)."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        return error_for_code(body["error"], description if isinstance(description, str) else "", status)
    code = "temporarily_unavailable" if status in (429, 503) else "server_error" if status >= 500 else "invalid_request"
    return error_for_code(code, f"HTTP {status} without an OAuth error body", status)


def _retry_after(response: httpx.Response, now: float) -> float | None:
    """Retry-After as seconds to wait (delta-seconds or HTTP-date, RFC 9110 §10.2.3), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def discovery_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known path goes between the host and the issuer's path."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, DISCOVERY_PATH + path, "", ""))


def _load_private_key(key: Any, alg: str) -> PrivateKey:
    key_type = _KEY_TYPE_BY_ALG.get(alg)
    if key_type is None:
        raise ValueError(f"unsupported private_key_alg {alg!r}; use one of {sorted(_KEY_TYPE_BY_ALG)}")
    # PEM (str or bytes) or a JWK dict; joserfc refuses what does not parse as key_type
    loaded = key if isinstance(key, RSAKey | ECKey | OKPKey) else JWKRegistry.import_key(key, key_type)
    if not isinstance(loaded, RSAKey | ECKey | OKPKey) or loaded.key_type != key_type:
        raise ValueError(f"private_key_alg {alg} needs an {key_type} key, not {loaded.key_type}")
    if not loaded.is_private:
        raise ValueError("private_key must be a private key")
    return loaded


class _Base:
    """Configuration, requests and parsing shared by the sync and async clients (no I/O here)."""

    def __init__(
        self,
        *,
        issuer: str | None,
        token_url: str | None,
        client_id: str,
        client_secret: str | None,
        private_key: Any,
        private_key_alg: str,
        auth_method: AuthMethod | None,
        scope: str | Iterable[str] | None,
        audience: str | None,
        timeout: float,
        max_retries: int,
        clock: Callable[[], float],
    ) -> None:
        if (issuer is None) == (token_url is None):
            raise ValueError("give exactly one of issuer (discovery) or token_url")
        if auth_method is None:
            auth_method = "private_key_jwt" if private_key is not None else "client_secret_basic"
        if auth_method not in _AUTH_METHODS:
            raise ValueError(f"auth_method must be one of {', '.join(_AUTH_METHODS)}")
        self._key: PrivateKey | None = None
        if auth_method == "private_key_jwt":
            if private_key is None:
                raise ValueError("private_key_jwt needs private_key")
            self._key = _load_private_key(private_key, private_key_alg)
        elif not client_secret:
            raise ValueError(f"{auth_method} needs client_secret")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.issuer = issuer.rstrip("/") if issuer else None
        self._token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._alg = private_key_alg
        self.auth_method: AuthMethod = auth_method
        self.scope = scope
        self.audience = audience
        self.timeout = timeout
        self.max_retries = max_retries
        self._clock = clock
        self._cache = TokenCache()

    def __repr__(self) -> str:  # never the secret or the key
        where = f"issuer={self.issuer!r}" if self.issuer else f"token_url={self._token_url!r}"
        return f"{type(self).__name__}({where}, client_id={self.client_id!r}, auth_method={self.auth_method!r})"

    def _key_for(self, scope: str | Iterable[str] | None, audience: str | None) -> CacheKey:
        return cache_key(self.scope if scope is None else scope, self.audience if audience is None else audience)

    def invalidate(
        self, access_token: str | None = None, scope: str | Iterable[str] | None = None, audience: str | None = None
    ) -> None:
        """Forget the cached token for (scope, audience), e.g. after a resource server rejected it.

        Args:
            access_token: Forget the entry only if it still holds this token, so that many requests
                rejected with the same token cause one refresh. None forgets it whatever it holds.
            scope: As given to `get_token` (None: the client's default).
            audience: As given to `get_token` (None: the client's default).
        """
        self._cache.invalidate(self._key_for(scope, audience), access_token)

    # -- requests -----------------------------------------------------------------------------------------

    def _token_form(self, token_url: str, key: CacheKey) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, form) of one token request; built anew for each attempt (a fresh assertion jti)."""
        scope, audience = key
        form = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        if audience:
            form["audience"] = audience
        headers = {"Accept": "application/json"}
        if self.auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: form-encode both before joining them, so a ':' in either survives.
            pair = f"{quote(self.client_id, safe='')}:{quote(self._client_secret or '', safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        elif self.auth_method == "client_secret_post":
            form["client_id"] = self.client_id
            form["client_secret"] = self._client_secret or ""
        else:
            form["client_id"] = self.client_id
            form["client_assertion_type"] = JWT_BEARER
            form["client_assertion"] = self._assertion(token_url)
        return headers, form

    def _assertion(self, token_url: str) -> str:
        """RFC 7523 §3: iss = sub = client_id, aud = the token endpoint, short exp, single-use jti."""
        assert self._key is not None
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": secrets.token_urlsafe(24),
        }
        header = {"alg": self._alg}
        if self._key.kid:
            header["kid"] = self._key.kid
        return jwt.encode(header, claims, self._key, algorithms=[self._alg])

    def _token_from(self, response: httpx.Response, key: CacheKey, sent_at: float) -> Token:
        if response.status_code != 200:
            raise _error_from_response(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise error_for_code("server_error", "token response without an access_token", 502)
        expires_in = body.get("expires_in")
        # Lifetime counted from when the request left, not when the answer came: errs on the early side.
        lifetime = (
            float(expires_in) if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) else 0.0
        )
        scope = body.get("scope")
        return Token(
            access_token=body["access_token"],
            token_type=str(body.get("token_type") or "Bearer"),
            expires_at=sent_at + lifetime,
            scope=scope if isinstance(scope, str) else key[0],
        )

    def _metadata_token_url(self, response: httpx.Response) -> str:
        if response.status_code != 200:
            raise _error_from_response(response)
        try:
            metadata = response.json()
        except ValueError:
            metadata = None
        if not isinstance(metadata, dict) or not isinstance(metadata.get("token_endpoint"), str):
            raise error_for_code("server_error", "discovery document without a token_endpoint", 502)
        # RFC 8414 §3.3: the metadata must name the issuer it was fetched for, or it is not to be used.
        if str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
            raise error_for_code("server_error", f"discovery document names issuer {metadata.get('issuer')!r}", 502)
        return str(metadata["token_endpoint"])

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Full-jitter exponential backoff, or the server's Retry-After (capped) when it gave one."""
        if response is not None:
            retry_after = _retry_after(response, time.time())
            if retry_after is not None:
                return min(retry_after, RETRY_AFTER_CAP)
        return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))

    def _retryable(self, attempt: int, response: httpx.Response | None, exc: Exception | None) -> bool:
        if attempt >= self.max_retries:
            return False
        if exc is not None:
            return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)
        return response is not None and response.status_code in _RETRY_STATUSES

    def _serve_stale(self, key: CacheKey, exc: BaseException) -> Token | None:
        """After a transient failure: the cached token if it is still valid (and no refresh for a few seconds)."""
        now = self._clock()
        stale = self._cache.valid(key, now) if _transient(exc) else None
        if stale is not None:
            log.warning(
                "token refresh failed (%s: %s); serving the cached token, valid for %.0f more seconds",
                type(exc).__name__,
                exc,
                stale.expires_at - now,
            )
            self._cache.defer_refresh(key, now + STALE_RETRY_INTERVAL)
        return stale


class TokenClient(_Base):
    """Gets, caches and refreshes client credentials tokens (blocking; thread-safe).

    Example::

        tokens = TokenClient(issuer="https://auth.example", client_id="svc-a", client_secret="...",
                             scope="read", audience="svc-b")
        httpx.get("https://svc-b.example/things", auth=ClientCredentialsAuth(tokens))
    """

    def __init__(
        self,
        *,
        issuer: str | None = None,
        token_url: str | None = None,
        client_id: str,
        client_secret: str | None = None,
        private_key: Any = None,
        private_key_alg: str = "RS256",
        auth_method: AuthMethod | None = None,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        http_client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Configure the client; nothing is fetched until the first token is asked for.

        Args:
            issuer: The authorization server's issuer URL; the token endpoint is found by discovery
                (RFC 8414), once. Give this or `token_url`.
            token_url: The token endpoint, when discovery is not wanted.
            client_id: This client's id.
            client_secret: Its secret (client_secret_basic, client_secret_post).
            private_key: For private_key_jwt: a joserfc key, a PEM string/bytes or a private JWK dict.
                Its `kid`, if any, goes into the assertion header.
            private_key_alg: Signature algorithm of the assertions: RS256 (default), PS256, ES256, EdDSA/Ed25519.
            auth_method: client_secret_basic (the default), client_secret_post or private_key_jwt
                (the default when a private_key is given).
            scope: Default scope (a space-separated string or an iterable of scope tokens); None: the
                client's registered scopes.
            audience: Default audience (RFC 8707 style); None: the server's default.
            timeout: Seconds per HTTP attempt.
            max_retries: Retries after network errors, 5xx and 429 (exponential backoff with full jitter,
                Retry-After honoured up to 10 s). OAuth 4xx errors are never retried.
            http_client: An httpx.Client to use (proxies, TLS settings); it is not closed by `close()`.
            clock: Seconds since the epoch; tests pass a fake clock.
            sleep: Waits between retries; tests pass a recorder.
        """
        super().__init__(
            issuer=issuer,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            private_key=private_key,
            private_key_alg=private_key_alg,
            auth_method=auth_method,
            scope=scope,
            audience=audience,
            timeout=timeout,
            max_retries=max_retries,
            clock=clock,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(timeout=timeout)
        self._sleep = sleep
        self._flight = SyncSingleFlight()
        self._discovery_lock = threading.Lock()

    def get_token(
        self, scope: str | Iterable[str] | None = None, audience: str | None = None, force_refresh: bool = False
    ) -> Token:
        """A valid token for (scope, audience), from the cache unless it is due for refresh.

        Concurrent callers that miss the cache for the same (scope, audience) share one token request.
        When a refresh fails with a network error, 5xx or 429 and the cached token has not expired yet,
        the cached token is returned (with a warning in the log).

        Args:
            scope: Scope to ask for (None: the client's default). Part of the cache key, order-insensitive.
            audience: Audience to ask for (None: the client's default). Part of the cache key.
            force_refresh: Ask the server for a new token even if the cached one is fresh.

        Returns:
            The token.

        Raises:
            m2m_auth.errors.OAuthError: The server refused (a subclass per RFC code, e.g. InvalidClient,
                InvalidScope, InvalidTarget; `.error`, `.description`, `.status`), or kept failing with 5xx/429.
            httpx.TransportError: The server could not be reached, after the retries.
        """
        key = self._key_for(scope, audience)
        now = self._clock()
        seen = self._cache.valid(key, now)
        if not force_refresh and (token := self._cache.fresh(key, now)) is not None:
            return token
        with self._flight.lock(key):
            current = self._cache.fresh(key, self._clock())
            # Someone else refreshed while this caller waited for the lock: that token is as new as ours would be.
            if current is not None and (not force_refresh or current is not seen):
                return current
            try:
                token = self._fetch(key)
            except (OAuthError, httpx.TransportError) as exc:
                if not force_refresh and (stale := self._serve_stale(key, exc)) is not None:
                    return stale
                raise
            return token

    def get_access_token(
        self, scope: str | Iterable[str] | None = None, audience: str | None = None, force_refresh: bool = False
    ) -> str:
        """`get_token(...).access_token`; see `get_token`.

        Args:
            scope: Scope to ask for (None: the client's default).
            audience: Audience to ask for (None: the client's default).
            force_refresh: Ask the server for a new token even if the cached one is fresh.

        Returns:
            The access token string.
        """
        return self.get_token(scope, audience, force_refresh).access_token

    def close(self) -> None:
        """Close the HTTP client if this TokenClient created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> TokenClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _fetch(self, key: CacheKey) -> Token:
        token_url = self._token_endpoint()
        sent_at = self._clock()

        def build() -> httpx.Request:
            headers, form = self._token_form(token_url, key)
            return self._http.build_request("POST", token_url, data=form, headers=headers, timeout=self.timeout)

        token = self._token_from(self._send(build), key, sent_at)
        self._cache.put(key, token, sent_at)
        return token

    def _token_endpoint(self) -> str:
        if self._token_url is not None:
            return self._token_url
        with self._discovery_lock:
            if self._token_url is None:
                assert self.issuer is not None
                url = discovery_url(self.issuer)
                response = self._send(
                    lambda: self._http.build_request(
                        "GET", url, headers={"Accept": "application/json"}, timeout=self.timeout
                    )
                )
                self._token_url = self._metadata_token_url(response)
            return self._token_url

    def _send(self, build: Callable[[], httpx.Request]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.send(build())
            except httpx.TransportError as exc:
                if not self._retryable(attempt, None, exc):
                    raise
                delay = self._delay(attempt, None)
                log.info("token endpoint unreachable (%s), retry %d in %.2f s", type(exc).__name__, attempt + 1, delay)
            else:
                if not self._retryable(attempt, response, None):
                    return response
                delay = self._delay(attempt, response)
                log.info("token endpoint answered %d, retry %d in %.2f s", response.status_code, attempt + 1, delay)
            self._sleep(delay)
            attempt += 1


class AsyncTokenClient(_Base):
    """The asyncio twin of `TokenClient`: same arguments, `await client.get_token()`.

    Concurrent tasks that miss the cache for the same (scope, audience) await one shared refresh task;
    no lock is held across an await, so a cancelled caller never blocks the others.
    """

    def __init__(
        self,
        *,
        issuer: str | None = None,
        token_url: str | None = None,
        client_id: str,
        client_secret: str | None = None,
        private_key: Any = None,
        private_key_alg: str = "RS256",
        auth_method: AuthMethod | None = None,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Configure the client; nothing is fetched until the first token is asked for.

        Args:
            issuer: The authorization server's issuer URL (discovery, RFC 8414). Give this or `token_url`.
            token_url: The token endpoint, when discovery is not wanted.
            client_id: This client's id.
            client_secret: Its secret (client_secret_basic, client_secret_post).
            private_key: For private_key_jwt: a joserfc key, a PEM string/bytes or a private JWK dict.
            private_key_alg: RS256 (default), PS256, ES256, EdDSA/Ed25519.
            auth_method: client_secret_basic (default), client_secret_post or private_key_jwt.
            scope: Default scope; None: the client's registered scopes.
            audience: Default audience; None: the server's default.
            timeout: Seconds per HTTP attempt.
            max_retries: Retries after network errors, 5xx and 429.
            http_client: An httpx.AsyncClient to use; it is not closed by `aclose()`.
            clock: Seconds since the epoch; tests pass a fake clock.
            sleep: Async wait between retries; tests pass a recorder.
        """
        super().__init__(
            issuer=issuer,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            private_key=private_key,
            private_key_alg=private_key_alg,
            auth_method=auth_method,
            scope=scope,
            audience=audience,
            timeout=timeout,
            max_retries=max_retries,
            clock=clock,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient(timeout=timeout)
        self._sleep = sleep
        self._flight = AsyncSingleFlight()
        self._discovery: asyncio.Task[str] | None = None

    async def get_token(
        self, scope: str | Iterable[str] | None = None, audience: str | None = None, force_refresh: bool = False
    ) -> Token:
        """A valid token for (scope, audience), from the cache unless it is due for refresh.

        Args:
            scope: Scope to ask for (None: the client's default). Part of the cache key, order-insensitive.
            audience: Audience to ask for (None: the client's default). Part of the cache key.
            force_refresh: Ask the server for a new token even if the cached one is fresh (joins a refresh
                already under way for the same key).

        Returns:
            The token.

        Raises:
            m2m_auth.errors.OAuthError: The server refused (a subclass per RFC code), or kept failing with 5xx/429.
            httpx.TransportError: The server could not be reached, after the retries.
        """
        key = self._key_for(scope, audience)
        if not force_refresh and (token := self._cache.fresh(key, self._clock())) is not None:
            return token
        return await self._flight.run(key, lambda: self._refresh(key, force_refresh))

    async def get_access_token(
        self, scope: str | Iterable[str] | None = None, audience: str | None = None, force_refresh: bool = False
    ) -> str:
        """`(await get_token(...)).access_token`; see `get_token`.

        Args:
            scope: Scope to ask for (None: the client's default).
            audience: Audience to ask for (None: the client's default).
            force_refresh: Ask the server for a new token even if the cached one is fresh.

        Returns:
            The access token string.
        """
        return (await self.get_token(scope, audience, force_refresh)).access_token

    async def aclose(self) -> None:
        """Close the HTTP client if this AsyncTokenClient created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncTokenClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _refresh(self, key: CacheKey, force_refresh: bool) -> Token:
        try:
            return await self._fetch(key)
        except (OAuthError, httpx.TransportError) as exc:
            if not force_refresh and (stale := self._serve_stale(key, exc)) is not None:
                return stale
            raise

    async def _fetch(self, key: CacheKey) -> Token:
        token_url = await self._token_endpoint()
        sent_at = self._clock()

        def build() -> httpx.Request:
            headers, form = self._token_form(token_url, key)
            return self._http.build_request("POST", token_url, data=form, headers=headers, timeout=self.timeout)

        token = self._token_from(await self._send(build), key, sent_at)
        self._cache.put(key, token, sent_at)
        return token

    async def _token_endpoint(self) -> str:
        if self._token_url is not None:
            return self._token_url
        # One discovery for all the keys being refreshed at once; a failed one is tried again next time.
        task = self._discovery
        failed = task is not None and task.done() and (task.cancelled() or task.exception() is not None)
        if task is None or failed or task.get_loop() is not asyncio.get_running_loop():
            task = self._discovery = asyncio.ensure_future(self._discover())
        self._token_url = await asyncio.shield(task)
        return self._token_url

    async def _discover(self) -> str:
        assert self.issuer is not None
        url = discovery_url(self.issuer)
        response = await self._send(
            lambda: self._http.build_request("GET", url, headers={"Accept": "application/json"}, timeout=self.timeout)
        )
        return self._metadata_token_url(response)

    async def _send(self, build: Callable[[], httpx.Request]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.send(build())
            except httpx.TransportError as exc:
                if not self._retryable(attempt, None, exc):
                    raise
                delay = self._delay(attempt, None)
                log.info("token endpoint unreachable (%s), retry %d in %.2f s", type(exc).__name__, attempt + 1, delay)
            else:
                if not self._retryable(attempt, response, None):
                    return response
                delay = self._delay(attempt, response)
                log.info("token endpoint answered %d, retry %d in %.2f s", response.status_code, attempt + 1, delay)
            await self._sleep(delay)
            attempt += 1
