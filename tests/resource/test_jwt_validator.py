"""JWTValidator against a real server's JWTs and JWKS: RFC 9068 §4 checks and the RFC 8725 attacks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jwk

from m2m_auth.errors import InvalidToken
from m2m_auth.resource import Claims, JWTValidator

from .._server import Api, ServerProcess
from ..jwt._helpers import forge
from ._support import SERVICE_AUDIENCE, FakeClock

Client = dict[str, Any]
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload)), signature


def reassemble(header: dict[str, Any], payload: dict[str, Any], signature: str) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{signature}"


def run(v: JWTValidator, token: str) -> Claims:
    async def go() -> Claims:
        try:
            return await v.verify(token)
        finally:
            await v.aclose()

    return asyncio.run(go())


def refused(v: JWTValidator, token: str) -> str:
    with pytest.raises(InvalidToken) as exc:
        run(v, token)
    return exc.value.detail


@pytest.fixture
def token(api: Api, jwt_caller: Client) -> str:
    return api.access_token(jwt_caller, scope="read", audience=SERVICE_AUDIENCE)


def test_a_jwt_of_the_server_verifies(server: ServerProcess, token: str, jwt_caller: Client) -> None:
    claims = run(JWTValidator(server.url, SERVICE_AUDIENCE), token)
    assert claims.scopes == frozenset({"read"})
    assert claims.client_id == jwt_caller["client_id"]
    assert claims.audience == (SERVICE_AUDIENCE,)
    assert claims["iss"] == server.url


def test_one_of_several_audiences_is_enough(server: ServerProcess, token: str) -> None:
    assert run(JWTValidator(server.url, ["https://x.example", SERVICE_AUDIENCE]), token)


def hs256_with_the_public_key(server: ServerProcess, token: str) -> str:
    header, payload, _ = parts(token)
    public = next(k for k in httpx.get(f"{server.url}/oauth/jwks.json").json()["keys"] if k["kid"] == header["kid"])
    pem = jwk.import_key(public).as_pem()
    signing_input = f"{b64(json.dumps({**header, 'alg': 'HS256'}).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def alg_none(server: ServerProcess, token: str) -> str:
    header, payload, _ = parts(token)
    return reassemble({**header, "alg": "none"}, payload, "")


def tampered(server: ServerProcess, token: str) -> str:
    header, payload, signature = parts(token)
    return reassemble(header, {**payload, "scope": "read write admin"}, signature)


def typ_jwt_validly_signed(server: ServerProcess, token: str) -> str:
    _, payload, _ = parts(token)
    return forge(server.database_url, payload, {"typ": "JWT"})


def wrong_issuer_validly_signed(server: ServerProcess, token: str) -> str:
    _, payload, _ = parts(token)
    return forge(server.database_url, {**payload, "iss": "https://evil.example"}, {"typ": "at+jwt"})


def no_client_id_validly_signed(server: ServerProcess, token: str) -> str:
    _, payload, _ = parts(token)
    del payload["client_id"]
    return forge(server.database_url, payload, {"typ": "at+jwt"})


def path_kid(server: ServerProcess, token: str) -> str:
    header, payload, signature = parts(token)
    return reassemble({**header, "kid": "../../etc/passwd' OR 1=1 --"}, payload, signature)


def embedded_attacker_jwk(server: ServerProcess, token: str) -> str:
    """Signed with a key of the attacker's, which the header carries (`jwk`) and points to (`jku`)."""
    from joserfc import jwt as jose_jwt

    header, payload, _ = parts(token)
    attacker = jwk.RSAKey.generate_key(2048)
    embedded = jwk.ECKey.generate_key("P-256").as_dict(private=False)  # small: joserfc caps header size
    evil = {**header, "jwk": embedded, "jku": "https://evil.example/jwks", "x5u": "https://evil.example/cert"}
    return jose_jwt.encode(evil, payload, attacker, algorithms=["RS256"])


def jwe_shaped(server: ServerProcess, token: str) -> str:
    return token + ".AAAA.BBBB"


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        (alg_none, "algorithm 'none' not allowed"),
        (hs256_with_the_public_key, "algorithm 'HS256' not allowed"),
        (tampered, "bad signature"),
        (typ_jwt_validly_signed, "wrong type"),
        (wrong_issuer_validly_signed, "wrong issuer"),
        (no_client_id_validly_signed, "missing claim client_id"),
        (path_kid, "unknown kid"),
        (embedded_attacker_jwk, "bad signature"),
        (jwe_shaped, "malformed"),
    ],
    ids=[
        "should refuse alg none",
        "should refuse HS256 keyed with the RSA public key",
        "should refuse a changed payload",
        "should refuse a validly signed typ JWT (not an access token)",
        "should refuse a validly signed token of another issuer",
        "should refuse a token without client_id",
        "should refuse a kid with path and SQL characters",
        "should ignore jwk and jku headers and refuse the attacker's signature",
        "should refuse a five-part token",
    ],
)
def test_rfc_8725_attacks_are_refused(
    server: ServerProcess, token: str, attack: Callable[[ServerProcess, str], str], reason: str
) -> None:
    v = JWTValidator(server.url, SERVICE_AUDIENCE)
    assert reason in refused(v, attack(server, token))


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"audience": "https://other.example"}, "wrong audience"),
        ({"clock": lambda: time.time() + 3600}, "expired"),
        ({"clock": lambda: time.time() - 3600}, "not yet valid"),
    ],
    ids=["should refuse another audience", "should refuse an expired token", "should refuse a token from the future"],
)
def test_claims_are_checked(server: ServerProcess, token: str, options: dict[str, Any], reason: str) -> None:
    options = {"audience": SERVICE_AUDIENCE, **options}
    assert reason in refused(JWTValidator(server.url, **options), token)


def test_the_leeway_absorbs_small_clock_skew(server: ServerProcess, api: Api) -> None:
    short = api.create_client(scope="read", audience=[SERVICE_AUDIENCE], access_token_format="jwt", access_token_ttl=5)
    token = api.access_token(short)
    exp = parts(token)[1]["exp"]
    assert run(JWTValidator(server.url, SERVICE_AUDIENCE, leeway=30, clock=lambda: exp + 20), token)
    assert "expired" in refused(JWTValidator(server.url, SERVICE_AUDIENCE, leeway=0, clock=lambda: exp), token)


def test_verified_tokens_are_cached_by_digest_until_exp(server: ServerProcess, token: str) -> None:
    clock = FakeClock()
    v = JWTValidator(server.url, SERVICE_AUDIENCE, clock=clock)

    async def scenario() -> None:
        try:
            claims = await v.verify(token)
            assert list(v._cache.keys()) == [hashlib.sha256(token.encode()).digest()]
            assert await v.verify(token) is claims  # from the cache
            clock.now = claims["exp"] + 60  # past exp and leeway: checked again, and refused
            with pytest.raises(InvalidToken, match="expired") as exc:
                await v.verify(token)
            assert "expired" in exc.value.detail
        finally:
            await v.aclose()

    asyncio.run(scenario())


def test_a_cached_token_vouches_for_no_other_signature_over_the_same_claims(server: ServerProcess, token: str) -> None:
    from joserfc import jwt as jose_jwt

    header, payload, signature = parts(token)
    raw = unb64(signature)
    flipped = f"{token.rsplit('.', 1)[0]}.{b64(bytes([raw[0] ^ 1]) + raw[1:])}"  # the same bytes up to the signature
    resigned = jose_jwt.encode(header, payload, jwk.RSAKey.generate_key(2048), algorithms=["RS256"])  # same kid, claims
    v = JWTValidator(server.url, SERVICE_AUDIENCE)

    async def scenario() -> None:
        try:
            claims = await v.verify(token)
            for forged in (flipped, resigned):
                assert parts(forged)[:2] == (header, payload)
                with pytest.raises(InvalidToken) as exc:
                    await v.verify(forged)
                assert "bad signature" in exc.value.detail
            assert len(v._cache) == 1  # the refusals cached nothing
            assert await v.verify(token) is claims  # and the good token is still served from the cache
        finally:
            await v.aclose()

    asyncio.run(scenario())


def test_a_token_accepted_only_thanks_to_the_leeway_is_not_cached(server: ServerProcess, api: Api) -> None:
    short = api.create_client(scope="read", audience=[SERVICE_AUDIENCE], access_token_format="jwt", access_token_ttl=5)
    token = api.access_token(short)
    clock = FakeClock(start=parts(token)[1]["exp"] + 20)  # past exp, inside the 30 s leeway
    v = JWTValidator(server.url, SERVICE_AUDIENCE, leeway=30, clock=clock)

    async def scenario() -> None:
        try:
            assert (await v.verify(token)).client_id == short["client_id"]
            assert len(v._cache) == 0  # an entry would outlive exp
            clock.advance(11)  # past the leeway too
            with pytest.raises(InvalidToken) as exc:
                await v.verify(token)
            assert "expired" in exc.value.detail
        finally:
            await v.aclose()

    asyncio.run(scenario())


def test_a_cached_token_is_verified_again_once_its_key_left_the_jwks(server: ServerProcess, token: str) -> None:
    v = JWTValidator(server.url, SERVICE_AUDIENCE, jwks_refetch_interval=3600)

    async def scenario() -> None:
        try:
            claims = await v.verify(token)
            jwks = await v.jwks()
            jwks._keys = {}  # as after a refresh that no longer lists the key (and no refetch allowed yet)
            with pytest.raises(InvalidToken) as exc:
                await v.verify(token)
            assert "unknown kid" in exc.value.detail
            assert claims["jti"]
        finally:
            await v.aclose()

    asyncio.run(scenario())


def test_a_rotation_is_followed_at_once_and_unknown_kids_cannot_flood_the_jwks(
    server_factory: Callable[..., ServerProcess],
) -> None:
    fresh = server_factory()
    api = Api(fresh.url)
    jwks_requests: list[str] = []

    async def count(request: httpx.Request) -> None:
        if request.url.path.endswith("jwks.json"):
            jwks_requests.append(request.url.path)

    clock = FakeClock(start=1000.0)
    http = httpx.AsyncClient(event_hooks={"request": [count]}, timeout=10)
    v = JWTValidator(fresh.url, SERVICE_AUDIENCE, http=http, jwks_clock=clock, jwks_refetch_interval=30)
    try:
        client = api.create_client(scope="read", audience=[SERVICE_AUDIENCE], access_token_format="jwt")
        first = api.access_token(client)

        async def scenario() -> None:
            await v.verify(first)
            assert len(jwks_requests) == 1

            clock.advance(31)  # the last fetch is older than the refetch interval
            assert api.admin("POST", "/admin/keys/rotate").status_code in (200, 201)
            second = api.access_token(client)
            assert parts(second)[0]["kid"] != parts(first)[0]["kid"]
            await v.verify(second)  # unknown kid: one refetch, and the new key is known
            assert len(jwks_requests) == 2

            # Made-up kids right after: refused without a fetch (rate limited), however many.
            header, payload, signature = parts(second)
            forged = [reassemble({**header, "kid": f"made-up-{n}"}, payload, signature) for n in range(20)]
            for token in forged:
                with pytest.raises(InvalidToken, match="invalid") as exc:
                    await v.verify(token)
                assert "unknown kid" in exc.value.detail
            assert len(jwks_requests) == 2

            # Once the interval passed, concurrent unknown kids share one refetch.
            clock.advance(31)
            results = await asyncio.gather(*(v.verify(t) for t in forged), return_exceptions=True)
            assert all(isinstance(r, InvalidToken) for r in results)
            assert len(jwks_requests) == 3
            assert (await v.verify(first)).client_id == client["client_id"]  # the old key is still published

        async def run_and_close() -> None:
            try:
                await scenario()
            finally:
                await http.aclose()  # on the loop its connections belong to

        asyncio.run(run_and_close())
    finally:
        api.close()
