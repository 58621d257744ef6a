"""IntrospectionValidator against a real server: answers, the cache bounds, negative caching, single flight."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from typing import Any

import pytest

from m2m_auth.errors import InvalidToken, TemporarilyUnavailable
from m2m_auth.resource import Claims, IntrospectionValidator, TokenValidator

from .._server import Api, ServerProcess
from ._support import SERVICE_AUDIENCE, FakeClock, introspections

Client = dict[str, Any]
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def validator(server: ServerProcess, service: Client, **options: Any) -> IntrospectionValidator:
    return IntrospectionValidator(
        issuer=server.url, client_id=service["client_id"], client_secret=service["client_secret"], **options
    )


def verify(v: IntrospectionValidator, token: str) -> Claims:
    return asyncio.run(_verify_and_close(v, token))


async def _verify_and_close(v: IntrospectionValidator, token: str) -> Claims:
    try:
        return await v.verify(token)
    finally:
        await v.aclose()


def test_an_active_token_gives_its_claims(server: ServerProcess, api: Api, service: Client, caller: Client) -> None:
    token = api.access_token(caller, scope="read", audience=SERVICE_AUDIENCE)
    v = validator(server, service, audience=SERVICE_AUDIENCE)
    assert isinstance(v, TokenValidator)
    claims = verify(v, token)
    assert claims["active"] is True
    assert claims.scopes == frozenset({"read"})
    assert claims.client_id == caller["client_id"]
    assert claims.audience == (SERVICE_AUDIENCE,)
    assert claims.has_scopes("read") and not claims.has_scopes("read", "write")


def test_a_revoked_token_is_served_from_the_cache_until_the_entry_lapses_then_refused(
    server: ServerProcess, api: Api, service: Client, caller: Client
) -> None:
    clock = FakeClock()
    v = validator(server, service, cache_max_ttl=0.5, clock=clock)
    token = api.access_token(caller, scope="read")

    async def scenario() -> None:
        try:
            await v.verify(token)
            assert api.revoke(caller, token).status_code == 200
            before = introspections(server.url)
            clock.advance(0.4)
            await v.verify(token)  # the documented bound: accepted from the cache for up to cache_max_ttl
            assert introspections(server.url) == before
            clock.advance(0.2)
            with pytest.raises(InvalidToken) as refused:
                await v.verify(token)
            assert "inactive" in refused.value.detail
            assert introspections(server.url) == before + 1
        finally:
            await v.aclose()

    asyncio.run(scenario())


@sqlite_only
def test_an_entry_never_outlives_the_token(server: ServerProcess, api: Api, service: Client) -> None:
    short = api.create_client(scope="read", access_token_ttl=30)
    token = api.access_token(short)
    clock = FakeClock()
    v = validator(server, service, cache_max_ttl=3600, clock=clock)

    async def scenario() -> None:
        try:
            claims = await v.verify(token)
            before = introspections(server.url)
            clock.now = claims["exp"] - 1
            await v.verify(token)
            assert introspections(server.url) == before  # still cached
            clock.now = claims["exp"]  # past exp: not from the cache (the server, on the real clock, still says active)
            with pytest.raises(InvalidToken) as refused:
                await v.verify(token)
            assert "expired" in refused.value.detail
            assert introspections(server.url) == before + 1
        finally:
            await v.aclose()

    asyncio.run(scenario())


@sqlite_only
def test_inactive_answers_are_cached_for_negative_ttl(server: ServerProcess, service: Client) -> None:
    clock = FakeClock()
    v = validator(server, service, negative_ttl=1.0, clock=clock)
    bogus = "m2m_at_" + "A" * 43

    async def scenario() -> None:
        try:
            before = introspections(server.url)
            for _ in range(3):
                with pytest.raises(InvalidToken):
                    await v.verify(bogus)
            assert introspections(server.url) == before + 1
            clock.advance(1.0)
            with pytest.raises(InvalidToken):
                await v.verify(bogus)
            assert introspections(server.url) == before + 2
        finally:
            await v.aclose()

    asyncio.run(scenario())


@sqlite_only
def test_fifty_concurrent_verifications_of_one_token_send_one_introspection(
    server: ServerProcess, api: Api, service: Client, caller: Client
) -> None:
    token = api.access_token(caller, scope="read")
    v = validator(server, service)

    async def scenario() -> list[Claims]:
        try:
            await v._endpoint()  # discovery first, so the count below is introspections only
            return await asyncio.gather(*(v.verify(token) for _ in range(50)))
        finally:
            await v.aclose()

    before = introspections(server.url)
    results = asyncio.run(scenario())
    assert introspections(server.url) == before + 1
    assert all(claims.client_id == caller["client_id"] for claims in results)


@sqlite_only
def test_the_cache_holds_digests_never_tokens_and_stays_bounded(
    server: ServerProcess, api: Api, service: Client, caller: Client
) -> None:
    token = api.access_token(caller, scope="read")
    v = validator(server, service, max_entries=2)

    async def scenario() -> None:
        try:
            await v.verify(token)
            keys = list(v._cache.keys())
            assert keys == [hashlib.sha256(token.encode()).digest()]
            assert all(token.encode() not in key and token not in repr(key) for key in keys)
            for n in range(3):
                with pytest.raises(InvalidToken):
                    await v.verify(f"m2m_at_unknown{n}")
            assert len(v._cache) == 2
            assert token not in repr(vars(v))
        finally:
            await v.aclose()

    asyncio.run(scenario())


@sqlite_only
@pytest.mark.parametrize(
    ("audience", "reason"),
    [("other", "wrong audience"), (SERVICE_AUDIENCE, None)],
    ids=["should refuse a token minted for another service", "should accept one minted for this service"],
)
def test_the_audience_is_checked_when_configured(
    server: ServerProcess, api: Api, service: Client, caller: Client, audience: str, reason: str | None
) -> None:
    token = api.access_token(caller, scope="read", audience=SERVICE_AUDIENCE)
    v = validator(server, service, audience=audience)
    if reason is None:
        assert verify(v, token).audience == (SERVICE_AUDIENCE,)
    else:
        with pytest.raises(InvalidToken) as refused:
            verify(v, token)
        assert reason in refused.value.detail


@sqlite_only
@pytest.mark.parametrize(
    "token",
    ["", "x" * 9000, "has space", 'quote"d', "line\nbreak"],
    ids=["empty", "oversized", "space", "quote", "line break"],
)
def test_malformed_tokens_are_refused_without_asking_the_server(
    server: ServerProcess, service: Client, token: str
) -> None:
    before = introspections(server.url)
    with pytest.raises(InvalidToken) as refused:
        verify(validator(server, service), token)
    assert "malformed" in refused.value.detail
    assert introspections(server.url) == before


@sqlite_only
def test_refused_service_credentials_are_an_outage_not_a_bad_token(
    server: ServerProcess, api: Api, service: Client, caller: Client
) -> None:
    token = api.access_token(caller, scope="read")
    v = IntrospectionValidator(issuer=server.url, client_id=service["client_id"], client_secret="wrong")
    with pytest.raises(TemporarilyUnavailable) as unavailable:
        verify(v, token)
    assert "401" in unavailable.value.detail


def test_an_unreachable_server_is_temporarily_unavailable_and_not_cached() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    v = IntrospectionValidator(
        introspection_url=f"http://127.0.0.1:{port}/oauth/introspect", client_id="x", client_secret="y", timeout=2
    )
    with pytest.raises(TemporarilyUnavailable):
        verify(v, "m2m_at_whatever")
    assert len(v._cache) == 0


@sqlite_only
def test_verify_sync_serves_threads_from_one_loop(
    server: ServerProcess, api: Api, service: Client, caller: Client
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    token = api.access_token(caller, scope="read write")
    v = validator(server, service)
    try:
        v.verify_sync(token)  # discovery and a cache entry
        before = introspections(server.url)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(v.verify_sync, [token] * 32))
        assert {claims.scopes for claims in results} == {frozenset({"read", "write"})}
        assert introspections(server.url) == before
    finally:
        v.close()


def test_the_constructor_wants_exactly_one_way_to_the_endpoint() -> None:
    with pytest.raises(ValueError):
        IntrospectionValidator(client_id="x", client_secret="y")
    with pytest.raises(ValueError):
        IntrospectionValidator(issuer="http://a", introspection_url="http://a/i", client_id="x", client_secret="y")
