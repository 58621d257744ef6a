"""TokenClient / AsyncTokenClient against a real server: authentication methods, discovery, the cache and its
keys, early refresh on a fake clock, single flight, typed errors, and a cached token served while the server
is down."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey

from m2m_auth.client import AsyncTokenClient, Token, TokenClient
from m2m_auth.errors import InvalidClient, InvalidScope, InvalidTarget, OAuthError

from .._server import Api, ServerProcess
from ._support import FakeClock, SleepRecorder, TokenRequests, tokens_issued

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
SVC_B = "https://svc-b.example"
SVC_C = "https://svc-c.example"


@pytest.fixture(scope="module")
def registered(api: Api) -> dict[str, Any]:
    return api.create_client(client_name="sdk caller", scope="read write", audience=[SVC_B, SVC_C])


@pytest.fixture
def counted() -> TokenRequests:
    return TokenRequests()


@pytest.fixture
def make_client(
    server: ServerProcess, registered: dict[str, Any], counted: TokenRequests
) -> Iterator[Callable[..., TokenClient]]:
    made: list[tuple[TokenClient, httpx.Client]] = []

    def make(**options: Any) -> TokenClient:
        http = counted.client()
        options.setdefault("token_url", None if "issuer" in options else f"{server.url}/oauth/token")
        options.setdefault("client_id", registered["client_id"])
        options.setdefault("client_secret", registered["client_secret"])
        client = TokenClient(http_client=http, **options)
        made.append((client, http))
        return client

    yield make
    for client, http in made:
        client.close()
        http.close()


# --- authentication methods and discovery ---------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_secret_client_gets_a_token_the_server_finds_active(
    method: str, make_client: Callable[..., TokenClient], api: Api, registered: dict[str, Any]
) -> None:
    token = make_client(auth_method=method, scope="read", audience=SVC_B).get_token()
    assert isinstance(token, Token) and token.token_type.lower() == "bearer" and token.scope == "read"
    info = api.introspect(registered, token.access_token).json()
    assert info["active"] is True and info["aud"] == SVC_B and info["scope"] == "read"
    assert token.access_token not in repr(token)


def _private_keys() -> list[tuple[str, Any]]:
    return [
        ("RS256", RSAKey.generate_key(2048, parameters={"kid": "sdk-rsa"})),
        ("ES256", ECKey.generate_key("P-256", parameters={"kid": "sdk-ec"})),
        ("Ed25519", OKPKey.generate_key("Ed25519", parameters={"kid": "sdk-ed"})),
        ("EdDSA", OKPKey.generate_key("Ed25519")),  # no kid: the server tries the client's keys of its type
    ]


@sqlite_only
@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")  # joserfc 1.8 (RFC 9864); clients may still send it
@pytest.mark.parametrize("alg,key", _private_keys(), ids=["RS256 key object", "ES256", "Ed25519", "EdDSA without kid"])
def test_private_key_jwt_authenticates_with_a_signed_assertion(
    alg: str, key: Any, server: ServerProcess, api: Api, counted: TokenRequests
) -> None:
    client = api.create_client(
        client_name="pkjwt",
        scope="read",
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
    )
    with TokenClient(
        issuer=server.url,
        client_id=client["client_id"],
        private_key=key,
        private_key_alg=alg,
        http_client=counted.client(),
    ) as tokens:
        assert tokens.auth_method == "private_key_jwt"
        first = tokens.get_token()
        # A forced refresh signs a new assertion: the server refuses a replayed jti.
        second = tokens.get_token(force_refresh=True)
    assert first.access_token != second.access_token
    assert counted.token == 2


@sqlite_only
def test_private_key_jwt_takes_a_pem_key(server: ServerProcess, api: Api) -> None:
    key = RSAKey.generate_key(2048)
    client = api.create_client(
        client_name="pkjwt pem", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [key.as_dict()]}
    )
    pem = key.as_pem(private=True)
    with TokenClient(token_url=f"{server.url}/oauth/token", client_id=client["client_id"], private_key=pem) as tokens:
        assert tokens.get_access_token()


def test_discovery_finds_the_token_endpoint_once(
    make_client: Callable[..., TokenClient], server: ServerProcess, counted: TokenRequests
) -> None:
    tokens = make_client(issuer=server.url)
    tokens.get_token(scope="read")
    tokens.get_token(scope="write")
    assert (counted.discovery, counted.token) == (1, 2)


# --- the cache ------------------------------------------------------------------------------------


def test_a_second_call_is_served_from_the_cache(
    make_client: Callable[..., TokenClient], server: ServerProcess, counted: TokenRequests
) -> None:
    tokens = make_client(scope="read", audience=SVC_B)
    before = tokens_issued(server.url)
    first = tokens.get_access_token()
    assert tokens.get_access_token() == first
    assert tokens.get_access_token(scope="read", audience=SVC_B) == first
    assert counted.token == 1
    assert tokens_issued(server.url) - before == 1


@sqlite_only
@pytest.mark.parametrize(
    "other",
    [{"scope": "write"}, {"scope": "read write"}, {"audience": SVC_C}, {"scope": "read", "audience": SVC_C}],
    ids=["another scope", "a wider scope", "another audience", "same scope, another audience"],
)
def test_the_cache_key_holds_scope_and_audience(
    other: dict[str, str], make_client: Callable[..., TokenClient], api: Api, registered: dict[str, Any]
) -> None:
    tokens = make_client()
    first = tokens.get_token(scope="read", audience=SVC_B)
    second = tokens.get_token(**{"scope": "read", "audience": SVC_B, **other})
    assert second.access_token != first.access_token
    info = api.introspect(registered, second.access_token).json()
    assert info["aud"] == other.get("audience", SVC_B)
    assert set(info["scope"].split()) == set(other.get("scope", "read").split())


@sqlite_only
def test_the_scope_key_ignores_order_and_duplicates(
    make_client: Callable[..., TokenClient], counted: TokenRequests
) -> None:
    tokens = make_client(audience=SVC_B)
    first = tokens.get_access_token(scope="read write")
    assert tokens.get_access_token(scope="write  read read") == first
    assert tokens.get_access_token(scope=["write", "read"]) == first
    assert counted.token == 1


@sqlite_only
def test_a_token_is_replaced_ahead_of_its_expiry(
    api: Api, server: ServerProcess, counted: TokenRequests, make_client: Callable[..., TokenClient]
) -> None:
    # A 3 s token is refreshed 0.3 s ahead (10 % of its life), not 30 s ahead (which would be before it was issued).
    short = api.create_client(client_name="short", scope="read", access_token_ttl=3)
    clock = FakeClock()
    tokens = make_client(client_id=short["client_id"], client_secret=short["client_secret"], clock=clock)
    first = tokens.get_token()
    assert first.expires_at == pytest.approx(clock.now + 3)
    clock.advance(2.6)
    assert tokens.get_token() is first
    clock.advance(0.2)  # 2.8 s: inside the last 10 %, before expiry
    second = tokens.get_token()
    assert second.access_token != first.access_token
    assert counted.token == 2


@sqlite_only
def test_a_long_lived_token_is_refreshed_30_seconds_ahead(
    make_client: Callable[..., TokenClient], counted: TokenRequests
) -> None:
    clock = FakeClock()
    tokens = make_client(clock=clock)  # the server's default lifetime: 600 s
    first = tokens.get_token()
    clock.advance(first.expires_at - clock.now - 31)
    assert tokens.get_token() is first
    clock.advance(2)
    assert tokens.get_token() is not first
    assert counted.token == 2


# --- single flight --------------------------------------------------------------------------------


def test_a_hundred_tasks_on_a_cold_cache_cause_one_token_request(
    server: ServerProcess, registered: dict[str, Any], counted: TokenRequests
) -> None:
    async def scenario() -> list[str]:
        async with counted.async_client() as http:
            tokens = AsyncTokenClient(
                token_url=f"{server.url}/oauth/token",
                client_id=registered["client_id"],
                client_secret=registered["client_secret"],
                scope="read",
                http_client=http,
            )
            return await asyncio.gather(*(tokens.get_access_token() for _ in range(100)))

    before = tokens_issued(server.url)
    results = asyncio.run(scenario())
    assert len(set(results)) == 1
    assert counted.token == 1
    assert tokens_issued(server.url) - before == 1


def test_twenty_threads_on_a_cold_cache_cause_one_token_request(
    make_client: Callable[..., TokenClient], server: ServerProcess, counted: TokenRequests
) -> None:
    tokens = make_client(scope="write")
    start = threading.Barrier(20)
    results: list[str] = []

    def call() -> None:
        start.wait()
        results.append(tokens.get_access_token())

    before = tokens_issued(server.url)
    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 20 and len(set(results)) == 1
    assert counted.token == 1
    assert tokens_issued(server.url) - before == 1


@sqlite_only
def test_a_cancelled_caller_does_not_strand_the_shared_refresh(
    server: ServerProcess, registered: dict[str, Any], counted: TokenRequests
) -> None:
    async def scenario() -> tuple[str, int]:
        async with counted.async_client() as http:
            tokens = AsyncTokenClient(
                token_url=f"{server.url}/oauth/token",
                client_id=registered["client_id"],
                client_secret=registered["client_secret"],
                http_client=http,
            )
            first = asyncio.ensure_future(tokens.get_access_token())
            others = [asyncio.ensure_future(tokens.get_access_token()) for _ in range(5)]
            await asyncio.sleep(0)
            first.cancel()  # the caller that started the refresh goes away
            results = await asyncio.gather(*others)
            return results[0], len(set(results))

    token, distinct = asyncio.run(scenario())
    assert token and distinct == 1
    assert counted.token == 1


# --- errors ---------------------------------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize(
    "options,error_class,code,status",
    [
        ({"scope": "admin"}, InvalidScope, "invalid_scope", 400),
        ({"audience": "https://elsewhere.example"}, InvalidTarget, "invalid_target", 400),
        ({"client_secret": "m2m_cs_wrong"}, InvalidClient, "invalid_client", 401),
        ({"client_secret": "m2m_cs_wrong", "auth_method": "client_secret_post"}, InvalidClient, "invalid_client", 401),
    ],
    ids=["scope not allowed", "audience not allowed", "wrong secret", "wrong secret in the form"],
)
def test_a_refusal_raises_a_typed_error_at_once(
    options: dict[str, str],
    error_class: type[OAuthError],
    code: str,
    status: int,
    make_client: Callable[..., TokenClient],
    counted: TokenRequests,
) -> None:
    sleep = SleepRecorder()
    tokens = make_client(sleep=sleep, **options)
    with pytest.raises(error_class) as caught:
        tokens.get_token()
    assert (caught.value.error, caught.value.status) == (code, status)
    assert caught.value.description
    assert counted.token == 1 and sleep.delays == []  # OAuth 4xx errors are not retried


@sqlite_only
def test_the_async_client_raises_the_same_typed_errors(server: ServerProcess, registered: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with AsyncTokenClient(
            issuer=server.url,
            client_id=registered["client_id"],
            client_secret=registered["client_secret"],
            scope="nope",
        ) as tokens:
            await tokens.get_token()

    with pytest.raises(InvalidScope):
        asyncio.run(scenario())


@pytest.mark.parametrize(
    "options,message",
    [
        ({"client_secret": "s"}, "exactly one of issuer"),
        ({"token_url": "http://x/oauth/token"}, "needs client_secret"),
        ({"token_url": "http://x/oauth/token", "auth_method": "private_key_jwt"}, "needs private_key"),
        (
            {"token_url": "http://x/oauth/token", "private_key": RSAKey.generate_key(2048).as_dict(private=False)},
            "private",
        ),
        (
            {"token_url": "http://x/t", "private_key": ECKey.generate_key("P-256"), "private_key_alg": "RS256"},
            "RSA key",
        ),
    ],
    ids=["no endpoint", "no secret", "no key", "a public key", "a key of the wrong type"],
)
def test_misconfiguration_fails_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenClient(client_id="c", **options)


# --- the server is down ---------------------------------------------------------------------------


@sqlite_only
def test_a_valid_cached_token_is_served_while_the_server_is_down(
    server_factory: Callable[..., ServerProcess], caplog: pytest.LogCaptureFixture
) -> None:
    down = server_factory()
    admin = Api(down.url)
    try:
        client = admin.create_client(client_name="outage", access_token_ttl=100)
    finally:
        admin.close()
    clock = FakeClock()
    sleep = SleepRecorder()
    with TokenClient(
        token_url=f"{down.url}/oauth/token",
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        clock=clock,
        sleep=sleep,
        max_retries=2,
    ) as tokens:
        first = tokens.get_token()
        down.stop()
        clock.advance(95)  # due for refresh (the last 10 s), not expired
        with caplog.at_level(logging.WARNING, logger="m2m_auth.client"):
            assert tokens.get_token() is first
        assert "serving the cached token" in caplog.text
        assert first.access_token not in caplog.text
        assert len(sleep.delays) == 2  # the refresh was retried, then given up
        assert tokens.get_token() is first  # no new attempt for a few seconds: callers are not slowed down
        assert len(sleep.delays) == 2
        clock.advance(6)  # expired now: nothing valid to serve
        with pytest.raises(httpx.ConnectError):
            tokens.get_token()
