"""The authorization server's signing keys (RFC 7517 JWK Set), fetched, cached and refetched on an unknown `kid`.

Each key gets the algorithms its own type allows (RFC 8725 §3.1): the token header names a key by `kid`, never
the algorithm to check it with. Symmetric (`oct`) keys are never taken from a JWKS: a published secret signs for anyone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwk
from joserfc.errors import JoseError

from m2m_auth.errors import TemporarilyUnavailable
from m2m_auth.resource._http import get_json

__all__ = ["JWKSCache", "VerificationKey", "algorithms_for"]

log = logging.getLogger("m2m_auth.resource")

_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_ED25519 = frozenset({"EdDSA", "Ed25519"})  # joserfc 1.8 names it Ed25519 (RFC 9864); signers still send EdDSA


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    key: Any  # a joserfc RSAKey, ECKey or OKPKey
    algorithms: frozenset[str]


def algorithms_for(jwk_dict: Mapping[str, Any]) -> frozenset[str]:
    """The signature algorithms a public JWK may verify: from its `kty`/`crv`, narrowed by its `alg` if it has one."""
    kty, crv, alg = jwk_dict.get("kty"), jwk_dict.get("crv"), jwk_dict.get("alg")
    if kty == "RSA":
        allowed = _RSA_ALGS if alg is not None else frozenset({"RS256"})
    elif kty == "EC" and crv in _EC_ALGS:
        allowed = frozenset({_EC_ALGS[crv]})
    elif kty == "OKP" and crv == "Ed25519":
        return _ED25519 if alg in (None, *_ED25519) else frozenset()
    else:
        return frozenset()  # oct, unknown types and curves: nothing
    if alg is None:
        return allowed
    return frozenset({alg}) & allowed


def _parse(document: Any, uri: str) -> dict[str, VerificationKey]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise TemporarilyUnavailable("signing keys unavailable", detail=f"JWKS at {uri} has no 'keys' list")
    keys: dict[str, VerificationKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
            continue
        algorithms = algorithms_for(entry)
        if not algorithms:
            log.debug("JWKS key %r skipped: no signature algorithm allowed for its type", kid[:64])
            continue
        public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        try:
            key = jwk.import_key(public)
        except (JoseError, ValueError, TypeError) as exc:
            log.debug("JWKS key %r skipped: %s", kid[:64], exc)
            continue
        keys[kid] = VerificationKey(kid, key, algorithms)
    return keys


class JWKSCache:
    """Keys from one JWKS URL.

    The set is fetched on first use and again once older than `max_age`; a `kid` not in it triggers a refetch, at
    most once per `refetch_interval` (so tokens with made-up `kid`s cannot make us flood the server), and concurrent
    fetches share one request. When a refetch fails, the keys already known stay in use.

    Args:
        uri: the JWKS URL (the `jwks_uri` of the server's metadata).
        http: the client to fetch with (pooled, with timeouts).
        max_age: seconds a fetched set is used before it is refreshed (10 minutes).
        refetch_interval: least number of seconds between two fetches caused by unknown `kid`s (30).
        clock: monotonic seconds; tests pass a fake.
    """

    def __init__(
        self,
        uri: str,
        http: httpx.AsyncClient,
        *,
        max_age: float = 600.0,
        refetch_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uri = uri
        self._http = http
        self._max_age = max_age
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._keys: dict[str, VerificationKey] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._fetch: asyncio.Task[None] | None = None
        self.fetches = 0  # requests sent, for metrics and tests

    async def get(self, kid: str) -> VerificationKey | None:
        """The key named `kid`, fetching the set when it is missing, old, or does not know `kid` (rate limited)."""
        if self._keys is None:
            # Nothing known yet: retry a failed first fetch after a second, not after the full interval.
            if not self._may_fetch(min(self._refetch_interval, 1.0)):
                raise TemporarilyUnavailable("signing keys unavailable", detail=f"JWKS at {self.uri} not fetched yet")
            await self._refresh()
        elif self._clock() - self._fetched_at >= self._max_age and self._may_fetch():
            await self._refresh()
        assert self._keys is not None
        key = self._keys.get(kid)
        if key is None and self._may_fetch():
            log.info("unknown kid %r: refetching the JWKS", kid[:64])
            await self._refresh()
            key = self._keys.get(kid)
        return key

    def peek(self, kid: str) -> VerificationKey | None:
        """The key named `kid` in the set held now, without fetching."""
        return None if self._keys is None else self._keys.get(kid)

    def _may_fetch(self, interval: float | None = None) -> bool:
        return (
            self._fetch is not None
            or self._attempted_at is None
            or self._clock() - self._attempted_at >= (self._refetch_interval if interval is None else interval)
        )

    async def _refresh(self) -> None:
        if self._fetch is None:
            self._attempted_at = self._clock()
            self._fetch = asyncio.ensure_future(self._load())
            self._fetch.add_done_callback(self._fetched)
        try:
            await asyncio.shield(self._fetch)
        except TemporarilyUnavailable as exc:
            if self._keys is None:
                raise
            log.warning("JWKS refresh failed, keeping the %d keys known: %s", len(self._keys), exc.detail)

    def _fetched(self, task: asyncio.Task[None]) -> None:
        self._fetch = None
        if not task.cancelled():
            task.exception()

    async def _load(self) -> None:
        self.fetches += 1
        keys = _parse(await get_json(self._http, self.uri, "JWKS"), self.uri)
        self._keys, self._fetched_at = keys, self._clock()
        log.debug("JWKS fetched from %s: %d keys", self.uri, len(keys))
