"""JWKSCache over a mock transport: which algorithms a key allows, refresh, rate limit, single flight, outages."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from joserfc import jwk

from m2m_auth.errors import TemporarilyUnavailable
from m2m_auth.resource.jwks import JWKSCache, algorithms_for

from ._support import FakeClock

URI = "https://as.example/jwks.json"


@pytest.mark.parametrize(
    ("key", "algorithms"),
    [
        ({"kty": "RSA"}, {"RS256"}),
        ({"kty": "RSA", "alg": "PS256"}, {"PS256"}),
        ({"kty": "RSA", "alg": "HS256"}, set()),
        ({"kty": "RSA", "alg": "none"}, set()),
        ({"kty": "EC", "crv": "P-256"}, {"ES256"}),
        ({"kty": "EC", "crv": "P-256", "alg": "ES384"}, set()),
        ({"kty": "EC", "crv": "P-384"}, {"ES384"}),
        ({"kty": "OKP", "crv": "Ed25519"}, {"EdDSA", "Ed25519"}),
        ({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA"}, {"EdDSA", "Ed25519"}),
        ({"kty": "OKP", "crv": "X25519"}, set()),
        ({"kty": "oct", "alg": "HS256"}, set()),
    ],
    ids=[
        "RSA without alg: RS256 only",
        "RSA with alg: that alg",
        "RSA claiming HS256: nothing",
        "RSA claiming none: nothing",
        "P-256: ES256",
        "P-256 claiming ES384: nothing",
        "P-384: ES384",
        "Ed25519: both names",
        "Ed25519 named EdDSA: both names",
        "X25519 (not for signing): nothing",
        "a symmetric key: never",
    ],
)
def test_the_algorithms_come_from_the_key_never_the_token(key: dict[str, Any], algorithms: set[str]) -> None:
    assert algorithms_for(key) == algorithms


class Server:
    """A JWKS endpoint whose answers the test changes; counts requests."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fail = False
        self.requests = 0

    def add_key(self, kid: str) -> None:
        public = jwk.RSAKey.generate_key(2048).as_dict(private=False)
        self.keys.append({**public, "kid": kid, "alg": "RS256", "use": "sig"})

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        await asyncio.sleep(0.01)  # long enough for concurrent callers to pile up
        if self.fail:
            return httpx.Response(503)
        secret = {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"}
        return httpx.Response(200, json={"keys": [*self.keys, secret, "junk", {"kty": "RSA"}]})


def make(server: Server, clock: FakeClock) -> tuple[JWKSCache, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(server.handle))
    return JWKSCache(URI, http, max_age=600, refetch_interval=30, clock=clock), http


def test_keys_are_fetched_once_refreshed_when_old_and_kept_through_an_outage() -> None:
    server, clock = Server(), FakeClock(0)
    server.add_key("a")
    cache, http = make(server, clock)

    async def scenario() -> None:
        async with http:
            assert (await cache.get("a")) is not None
            assert await cache.get("shared") is None  # a symmetric key is never taken
            assert server.requests == 1  # "shared" was unknown, but the set was fetched just now
            clock.advance(601)
            server.fail = True
            assert (await cache.get("a")) is not None  # stale, refresh failed: the known keys stay in use
            assert server.requests == 2
            clock.advance(10)
            assert (await cache.get("a")) is not None
            assert server.requests == 2  # a failed refresh is not retried on every request

    asyncio.run(scenario())


def test_concurrent_first_uses_share_one_fetch_and_a_failed_first_fetch_is_an_outage() -> None:
    server, clock = Server(), FakeClock(0)
    server.add_key("a")
    server.fail = True
    cache, http = make(server, clock)

    async def scenario() -> None:
        async with http:
            results = await asyncio.gather(*(cache.get("a") for _ in range(10)), return_exceptions=True)
            assert all(isinstance(r, TemporarilyUnavailable) for r in results)
            assert server.requests == 1
            with pytest.raises(TemporarilyUnavailable):
                await cache.get("a")  # retried after a second, not at once
            assert server.requests == 1
            clock.advance(1)
            server.fail = False
            keys = await asyncio.gather(*(cache.get("a") for _ in range(10)))
            assert all(k is not None and k.algorithms == {"RS256"} for k in keys)
            assert server.requests == 2

    asyncio.run(scenario())


ISSUER = "https://as.example"


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize(
    ("key", "alg", "typ"),
    [
        (lambda: jwk.ECKey.generate_key("P-256"), "ES256", "at+jwt"),
        (lambda: jwk.OKPKey.generate_key("Ed25519"), "EdDSA", "application/at+jwt"),
        (lambda: jwk.OKPKey.generate_key("Ed25519"), "Ed25519", "AT+JWT"),
        (lambda: jwk.RSAKey.generate_key(2048), "PS256", "at+jwt"),
    ],
    ids=["ES256", "EdDSA", "Ed25519 under its RFC 9864 name", "PS256 (named by the key's alg)"],
)
def test_every_key_type_the_server_can_sign_with_verifies_through_discovery(key: Any, alg: str, typ: str) -> None:
    import time

    from joserfc import jwt

    from m2m_auth.resource import JWTValidator

    private = key()
    public = {**private.as_dict(private=False), "kid": "k1", "alg": alg, "use": "sig"}

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": URI})
        return httpx.Response(200, json={"keys": [public]})

    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "c", "client_id": "c", "aud": "svc", "exp": now + 60, "iat": now, "scope": "read"}
    token = jwt.encode({"alg": alg, "typ": typ, "kid": "k1"}, claims, private, algorithms=[alg])

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
            verified = await JWTValidator(ISSUER, "svc", http=http).verify(token)
            assert verified.scopes == {"read"} and verified.client_id == "c"

    asyncio.run(scenario())
