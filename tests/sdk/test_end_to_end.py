"""End to end: httpx (sync and async) and requests call a real protected service, which checks tokens by
introspection at the real server. A token revoked behind the client's back is answered 401 invalid_token,
and the auth refreshes it once and retries; a 403 insufficient_scope is returned as is."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests

from m2m_auth.client import AsyncTokenClient, ClientCredentialsAuth, RequestsClientCredentialsAuth, TokenClient

from .._server import Api, ServerProcess
from ._support import TokenRequests, protected_service

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def caller(api: Api) -> dict[str, Any]:
    return api.create_client(client_name="service a", scope="read write")


@pytest.fixture(scope="module")
def service(server: ServerProcess, api: Api) -> Iterator[str]:
    own = api.create_client(client_name="service b")  # its credentials for introspection
    with protected_service(server.url, own) as url:
        yield url


@pytest.fixture
def counted() -> TokenRequests:
    return TokenRequests()


@pytest.fixture
def tokens(server: ServerProcess, caller: dict[str, Any], counted: TokenRequests) -> Iterator[TokenClient]:
    with counted.client() as http:
        yield TokenClient(
            issuer=server.url, client_id=caller["client_id"], client_secret=caller["client_secret"], http_client=http
        )


def test_httpx_calls_the_service_and_recovers_from_a_revoked_token(
    service: str, tokens: TokenClient, api: Api, caller: dict[str, Any], counted: TokenRequests
) -> None:
    with httpx.Client(auth=ClientCredentialsAuth(tokens, scope="read")) as http:
        assert http.get(service).status_code == 200
        assert http.get(service).status_code == 200
        assert counted.token == 1
        assert api.revoke(caller, tokens.get_access_token(scope="read")).status_code == 200
        response = http.get(service)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert counted.token == 2


def test_httpx_returns_a_403_without_retrying(service: str, tokens: TokenClient, counted: TokenRequests) -> None:
    with httpx.Client(auth=ClientCredentialsAuth(tokens, scope="write")) as http:
        response = http.get(service)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert response.history == [] and counted.token == 1


def test_an_async_client_shares_one_token_and_recovers_from_revocation(
    service: str, server: ServerProcess, api: Api, caller: dict[str, Any]
) -> None:
    counted = TokenRequests()

    async def scenario() -> tuple[list[int], httpx.Response]:
        async with counted.async_client() as token_http:
            tokens = AsyncTokenClient(
                token_url=f"{server.url}/oauth/token",
                client_id=caller["client_id"],
                client_secret=caller["client_secret"],
                scope="read",
                http_client=token_http,
            )
            async with httpx.AsyncClient(auth=ClientCredentialsAuth(tokens)) as http:
                statuses = [r.status_code for r in await asyncio.gather(*(http.get(service) for _ in range(10)))]
                api.revoke(caller, await tokens.get_access_token())
                return statuses, await http.get(service)

    statuses, after_revocation = asyncio.run(scenario())
    assert statuses == [200] * 10
    assert after_revocation.status_code == 200
    assert [r.status_code for r in after_revocation.history] == [401]
    assert counted.token == 2


def test_requests_calls_the_service_and_recovers_from_a_revoked_token(
    service: str, tokens: TokenClient, api: Api, caller: dict[str, Any], counted: TokenRequests
) -> None:
    with requests.Session() as session:
        session.auth = RequestsClientCredentialsAuth(tokens, scope="read")
        assert session.get(service, timeout=10).status_code == 200
        api.revoke(caller, tokens.get_access_token(scope="read"))
        response = session.get(service, timeout=10)
        assert response.status_code == 200
        assert [r.status_code for r in response.history] == [401]
        assert counted.token == 2
        forbidden = session.get(service, auth=RequestsClientCredentialsAuth(tokens, scope="write"), timeout=10)
    assert forbidden.status_code == 403 and forbidden.history == []


@pytest.mark.parametrize("library", ["httpx", "requests"])
def test_a_token_rejected_again_after_the_refresh_is_not_retried_twice(
    library: str, service: str, tokens: TokenClient, counted: TokenRequests
) -> None:
    url = service.replace("/protected", "/always-invalid")
    if library == "httpx":
        with httpx.Client(auth=ClientCredentialsAuth(tokens)) as http:
            response: Any = http.get(url)
    else:
        response = requests.get(url, auth=RequestsClientCredentialsAuth(tokens), timeout=10)
    assert response.status_code == 401
    assert [r.status_code for r in response.history] == [401]
    assert counted.token == 2
