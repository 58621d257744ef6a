"""Validating bearer access tokens: by introspection (RFC 7662) or as JWTs (RFC 9068), behind one `verify()`.

Both raise `m2m_auth.errors.InvalidToken` for a token to refuse (its `detail` says why, for the log; the token is
never in it) and `m2m_auth.errors.TemporarilyUnavailable` when the authorization server cannot be asked: that is
no verdict on the token, so the integrations answer 503, not 401.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, Self, runtime_checkable

import httpx
from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError

from m2m_auth.errors import InvalidToken, TemporarilyUnavailable
from m2m_auth.resource._cache import SingleFlight, TTLCache, digest
from m2m_auth.resource._http import discover, new_client, read_json
from m2m_auth.resource._sync import LoopThread
from m2m_auth.resource.jwks import JWKSCache

__all__ = ["Claims", "TokenValidator", "IntrospectionValidator", "JWTValidator", "MAX_TOKEN_LENGTH"]

log = logging.getLogger("m2m_auth.resource")

MAX_TOKEN_LENGTH = 8192  # refused before any work: our tokens are < 1 KiB, a JWT with big metadata a few KiB
# RFC 6750 §2.1 b64token
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_AT_JWT_TYPES = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 §4; media types compare case-insensitively


class Claims(Mapping[str, Any]):
    """The claims of a verified token (a JWT's payload, or an introspection answer), read-only."""

    __slots__ = ("_data", "_scopes")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)
        self._scopes: frozenset[str] | None = None

    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Claims({self._data!r})"

    @property
    def scopes(self) -> frozenset[str]:
        if self._scopes is None:  # parsed once: cached claims answer many requests
            scope = self._data.get("scope")
            self._scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        return self._scopes

    @property
    def client_id(self) -> str | None:
        value = self._data.get("client_id", self._data.get("sub"))
        return value if isinstance(value, str) else None

    @property
    def audience(self) -> tuple[str, ...]:
        aud = self._data.get("aud")
        if isinstance(aud, str):
            return (aud,)
        if isinstance(aud, list):
            return tuple(a for a in aud if isinstance(a, str))
        return ()

    @property
    def expires_at(self) -> int | None:
        exp = self._data.get("exp")
        return exp if isinstance(exp, int) and not isinstance(exp, bool) else None

    def has_scopes(self, *scopes: str) -> bool:
        return set(scopes) <= self.scopes


@runtime_checkable
class TokenValidator(Protocol):
    """Decides whether a bearer token is good; the integrations take any object of this shape."""

    async def verify(self, token: str) -> Claims:
        """The token's claims.

        Raises:
            InvalidToken: the token is to be refused; `detail` names the reason.
            TemporarilyUnavailable: the authorization server could not be asked.
        """
        ...


def _invalid(reason: str, description: str = "The access token is invalid") -> InvalidToken:
    return InvalidToken(description, detail=reason)


def _check_size(token: str) -> None:
    """Before any work, hashing included: a string, neither empty nor longer than MAX_TOKEN_LENGTH."""
    if not isinstance(token, str) or not token:
        raise _invalid("malformed: empty token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise _invalid(f"malformed: token of {len(token)} characters, more than {MAX_TOKEN_LENGTH}")


def _check_syntax(token: str) -> None:
    """On a cache miss only: a token in the cache passed this check when it was verified (its digest is the key)."""
    if _B64TOKEN.fullmatch(token) is None:
        raise _invalid("malformed: characters outside the bearer token syntax (RFC 6750 §2.1)")


@functools.lru_cache(maxsize=32)
def _jws_registry(algorithms: frozenset[str]) -> jws.JWSRegistry:
    """One registry per allow-list, built once: joserfc builds one per call when given `algorithms=`."""
    return jws.JWSRegistry(algorithms=sorted(algorithms))


def _audiences(audience: str | Sequence[str] | None) -> tuple[str, ...]:
    if audience is None:
        return ()
    return (audience,) if isinstance(audience, str) else tuple(audience)


def _check_audience(claims: Claims, expected: tuple[str, ...]) -> None:
    if expected and not set(claims.audience) & set(expected):
        raise _invalid(f"wrong audience: token for {list(claims.audience)}, this service is {list(expected)}")


class _Base(ABC):
    """What both validators share: an HTTP client they may own, and the synchronous facade."""

    def __init__(self, http: httpx.AsyncClient | None, timeout: float) -> None:
        self._owns_http = http is None
        self._http = http if http is not None else new_client(timeout)
        self._timeout = timeout
        self._loop_thread: LoopThread | None = None

    @abstractmethod
    async def verify(self, token: str) -> Claims: ...

    def verify_sync(self, token: str) -> Claims:
        """`verify()` for synchronous code (WSGI, Flask, scripts).

        It runs on an event loop of the validator's own, in a daemon thread, shared by all threads that call it, so
        they share one cache and one HTTP pool. A validator serves either one event loop through `verify()` or
        threads through `verify_sync()`, not both (its HTTP connections belong to one loop).
        """
        if self._loop_thread is None:
            self._loop_thread = LoopThread()
        return self._loop_thread.run(self.verify(token), timeout=4 * self._timeout + 5)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def close(self) -> None:
        """Close the HTTP client and stop the loop thread that `verify_sync()` started."""
        if self._loop_thread is not None:
            self._loop_thread.run(self.aclose())
            self._loop_thread.stop()
            self._loop_thread = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class IntrospectionValidator(_Base):
    """Asks the authorization server (RFC 7662) and caches the answer briefly.

    A cached answer is reused for at most `cache_max_ttl` seconds and never past the token's `exp`, so a revoked
    token is refused at most `cache_max_ttl` seconds after its revocation: that is the bound to choose. Inactive
    answers are cached `negative_ttl` seconds, so a client retrying a bad token does not reach the server for each
    try. Concurrent verifications of one token not in the cache send one request. The cache is keyed by the
    token's SHA-256 and holds at most `max_entries` answers (least recently used go first).

    Args:
        issuer: the server's issuer URL; the introspection endpoint is read from its metadata (RFC 8414).
        introspection_url: the endpoint itself, instead of `issuer`.
        client_id: this service's own client id at the authorization server (introspection needs a client).
        client_secret: its secret, sent with HTTP Basic.
        audience: if given, the token's `aud` must name it (or one of them).
        cache_max_ttl: longest life of a cached active answer, in seconds (0 turns the cache off).
        negative_ttl: life of a cached inactive answer, in seconds.
        max_entries: most answers kept.
        timeout: seconds for each request to the server (connect, read, write and pool wait each).
        http: an `httpx.AsyncClient` to use instead of one of our own (it is then yours to close).
        clock: wall-clock seconds; tests pass a fake.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        issuer: str | None = None,
        introspection_url: str | None = None,
        audience: str | Sequence[str] | None = None,
        cache_max_ttl: float = 5.0,
        negative_ttl: float = 1.0,
        max_entries: int = 10_000,
        timeout: float = 5.0,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (issuer is None) == (introspection_url is None):
            raise ValueError("give either issuer (for discovery) or introspection_url")
        super().__init__(http, timeout)
        self._issuer = issuer
        self._url = introspection_url
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._audience = _audiences(audience)
        self._max_ttl = cache_max_ttl
        self._negative_ttl = negative_ttl
        self._clock = clock
        self._cache: TTLCache[Claims | None] = TTLCache(max_entries, clock)
        self._flight: SingleFlight[Claims | None] = SingleFlight()

    async def verify(self, token: str) -> Claims:
        _check_size(token)
        key = digest(token)
        found, claims = self._cache.get(key)
        if not found:
            _check_syntax(token)
            claims = await self._flight.run(key, lambda: self._introspect(token, key))
        if claims is None:
            raise _invalid("inactive: revoked, expired or unknown (introspection)", "The access token is not active")
        exp = claims.expires_at
        if exp is not None and exp <= self._clock():
            raise _invalid(f"expired at {exp} (client {claims.client_id})", "The access token expired")
        if self._audience:
            _check_audience(claims, self._audience)
        return claims

    async def _endpoint(self) -> str:
        if self._url is None:
            assert self._issuer is not None
            endpoint = (await discover(self._http, self._issuer)).get("introspection_endpoint")
            if not isinstance(endpoint, str):
                raise TemporarilyUnavailable(
                    "introspection unavailable", detail="the server's metadata has no introspection_endpoint"
                )
            self._url = endpoint
        return self._url

    async def _introspect(self, token: str, key: bytes) -> Claims | None:
        url = await self._endpoint()
        form = {"token": token, "token_type_hint": "access_token"}
        try:
            async with self._http.stream("POST", url, data=form, auth=self._auth) as response:
                if response.status_code != 200:
                    # 401: our own credentials were refused. That says nothing about the caller's token.
                    detail = f"introspection answered HTTP {response.status_code}"
                    if response.status_code == 401:
                        log.error("introspection refused this service's client credentials (HTTP 401)")
                    raise TemporarilyUnavailable("introspection unavailable", detail=detail)
                body = await read_json(response, "introspection")
        except httpx.HTTPError as exc:
            raise TemporarilyUnavailable(
                "introspection unavailable", detail=f"introspection: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            raise TemporarilyUnavailable("introspection unavailable", detail="introspection answer has no 'active'")
        if not body["active"]:
            self._cache.put(key, None, self._negative_ttl)
            return None
        claims = Claims(body)
        lifetime = self._max_ttl
        if claims.expires_at is not None:
            lifetime = min(lifetime, claims.expires_at - self._clock())
        self._cache.put(key, claims, lifetime)
        return claims


class JWTValidator(_Base):
    """Validates RFC 9068 JWT access tokens locally, with the server's published keys.

    Checked: the header's `typ` is `at+jwt`; the `kid` is in the JWKS (an unknown one triggers a rate-limited
    refetch, see `JWKSCache`); the header's `alg` is one the key's type allows (so never `none`, never HMAC); the
    signature; then `iss`, `aud`, `exp`, `nbf` and `iat` with `leeway` seconds of clock skew, and the presence of
    `sub`, `client_id` and `iat`. Verified tokens are cached by digest until their `exp`, as long as their key
    stays in the JWKS. A JWT cannot be revoked here: it is good until it expires (introspect where that matters).

    Args:
        issuer: the expected `iss`; also where discovery (RFC 8414) finds `jwks_uri`.
        audience: this service's identifier, or several; the token's `aud` must name one.
        jwks_uri: the JWKS URL, instead of discovery.
        leeway: seconds of clock skew allowed on `exp`, `nbf` and `iat`.
        timeout: seconds for each request to the server.
        jwks_max_age: seconds a fetched JWKS is used before it is refreshed.
        jwks_refetch_interval: least seconds between two refetches caused by unknown `kid`s.
        max_entries: most verified tokens cached (0 turns the cache off).
        http: an `httpx.AsyncClient` to use instead of one of our own (it is then yours to close).
        clock: wall-clock seconds for the claim checks; `jwks_clock`: monotonic seconds for the JWKS. Tests pass fakes.
    """

    def __init__(
        self,
        issuer: str,
        audience: str | Sequence[str],
        *,
        jwks_uri: str | None = None,
        leeway: int = 30,
        timeout: float = 5.0,
        jwks_max_age: float = 600.0,
        jwks_refetch_interval: float = 30.0,
        max_entries: int = 10_000,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        jwks_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(http, timeout)
        self._issuer = issuer
        self._audience = _audiences(audience)
        if not self._audience:
            raise ValueError("a JWT validator needs the audience this service answers to")
        self._jwks_uri = jwks_uri
        self._leeway = int(leeway)
        self._jwks_options: dict[str, Any] = {
            "max_age": jwks_max_age,
            "refetch_interval": jwks_refetch_interval,
            "clock": jwks_clock,
        }
        self._jwks: JWKSCache | None = None
        self._clock = clock
        self._cache: TTLCache[tuple[Claims, str]] = TTLCache(max_entries, clock)
        # Built once; `now` is read from the clock at each validation.
        self._claims_registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=self._leeway,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "values": list(self._audience)},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            client_id={"essential": True},
        )

    async def jwks(self) -> JWKSCache:
        """The key cache (the JWKS URL found by discovery when none was given)."""
        if self._jwks is None:
            uri = self._jwks_uri
            if uri is None:
                uri = (await discover(self._http, self._issuer)).get("jwks_uri")
                if not isinstance(uri, str):
                    raise TemporarilyUnavailable("signing keys unavailable", detail="the metadata has no jwks_uri")
            if self._jwks is None:  # another task may have discovered it meanwhile
                self._jwks = JWKSCache(uri, self._http, **self._jwks_options)
        return self._jwks

    async def verify(self, token: str) -> Claims:
        _check_size(token)
        key = digest(token)
        found, entry = self._cache.get(key)
        if found and entry is not None and self._jwks is not None and self._jwks.peek(entry[1]) is not None:
            return entry[0]  # the same bytes, signature included, verified before exp and with a key still published
        _check_syntax(token)
        claims, kid = await self._verify(token)
        assert claims.expires_at is not None  # essential, checked
        self._cache.put(key, (claims, kid), claims.expires_at - self._clock())
        return claims

    async def _verify(self, token: str) -> tuple[Claims, str]:
        if token.count(".") != 2:
            raise _invalid("malformed: not a JWS compact serialization")
        try:  # parsed once: the header is checked here, the signature below on the same object
            compact = jws.extract_compact(token.encode("ascii"))
            header = compact.headers()
        except (JoseError, ValueError, TypeError) as exc:
            raise _invalid(f"malformed JWT: {type(exc).__name__}") from exc
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _AT_JWT_TYPES:
            raise _invalid(f"wrong type: typ {_short(typ)}, not at+jwt (RFC 9068 §4)")
        if "crit" in header:
            raise _invalid("unsupported critical header parameters")
        kid, alg = header.get("kid"), header.get("alg")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise _invalid(f"no usable kid: {_short(kid)}")
        if not isinstance(alg, str):
            raise _invalid("malformed JWT: no alg")
        jwks = await self.jwks()
        verification_key = await jwks.get(kid)
        if verification_key is None:
            raise _invalid(f"unknown kid {_short(kid)} (not in the JWKS)")
        if alg not in verification_key.algorithms:
            raise _invalid(
                f"algorithm {_short(alg)} not allowed for key {_short(kid)} (it allows {sorted(verification_key.algorithms)})"
            )
        try:
            # What jwt.decode does (joserfc's signature check, then the payload as a JSON object), without
            # parsing the token a second time or building a registry per call.
            good = jws.validate_compact(
                compact, verification_key.key, registry=_jws_registry(verification_key.algorithms)
            )
            raw = json.loads(compact.payload) if good else None
        except (JoseError, ValueError, TypeError) as exc:
            raise _invalid(f"malformed JWT: {type(exc).__name__}") from exc
        if not good:
            raise _invalid(f"bad signature (key {_short(kid)})")
        if not isinstance(raw, dict):
            raise _invalid("malformed JWT: the payload is not a JSON object")
        claims = Claims(raw)
        self._check_claims(raw, claims)
        return claims, kid

    def _check_claims(self, raw: dict[str, Any], claims: Claims) -> None:
        try:
            self._claims_registry.validate(raw)
        except JoseError as exc:
            raise self._claims_refusal(raw, claims, exc) from exc
        if claims.expires_at is None:
            raise _invalid(f"invalid claim exp: not an integer (client {_short(claims.client_id)})")
        if "scope" in raw and not isinstance(raw["scope"], str):
            raise _invalid(f"invalid claim scope: not a string (client {_short(claims.client_id)})")
        if not isinstance(raw["client_id"], str):
            raise _invalid("invalid claim client_id: not a string")

    def _claims_refusal(self, raw: dict[str, Any], claims: Claims, exc: JoseError) -> InvalidToken:
        """The refusal for a failed claim check, its detail naming the claim (built only when one fails)."""
        who = f"client {_short(claims.client_id)}"
        if isinstance(exc, ExpiredTokenError):
            return _invalid(f"expired at {raw.get('exp')} ({who})", "The access token expired")
        if isinstance(exc, MissingClaimError):
            return _invalid(f"missing claim {exc.claim} ({who})")
        if isinstance(exc, InvalidClaimError):
            if exc.claim == "aud":
                aud = raw.get("aud")
                return _invalid(
                    f"wrong audience: token for {_short(aud)}, this service is {list(self._audience)} ({who})"
                )
            if exc.claim == "iss":
                return _invalid(f"wrong issuer {_short(raw.get('iss'))} ({who})")
            if exc.claim in ("nbf", "iat"):
                return _invalid(f"not yet valid: {exc.claim} {_short(raw.get(exc.claim))} ({who})")
            return _invalid(f"invalid claim {exc.claim} ({who})")
        return _invalid(f"invalid claims: {type(exc).__name__} ({who})")


def _short(value: object, limit: int = 64) -> str:
    """A header or claim value for the log: repr'd (no line breaks get through) and cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
