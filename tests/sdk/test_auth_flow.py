"""ClientCredentialsAuth stepped by hand with next()/send() (httpx's own auth tests do the same).

Tokens come from the real server; the service answers (401, 403, 200) are fabricated, so each test names
exactly which answer causes a refresh and a retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from m2m_auth.client import AsyncTokenClient, ClientCredentialsAuth, TokenClient

from .._server import Api, ServerProcess
from ._support import TokenRequests

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

SERVICE = "http://svc-b.example/things"


@pytest.fixture(scope="module")
def registered(api: Api) -> dict[str, Any]:
    return api.create_client(client_name="flow caller", scope="read write")


@pytest.fixture
def counted() -> TokenRequests:
    return TokenRequests()


@pytest.fixture
def tokens(server: ServerProcess, registered: dict[str, Any], counted: TokenRequests) -> Iterator[TokenClient]:
    with counted.client() as http:
        yield TokenClient(
            token_url=f"{server.url}/oauth/token",
            client_id=registered["client_id"],
            client_secret=registered["client_secret"],
            scope="read",
            http_client=http,
        )


def answer(request: httpx.Request, status: int, challenge: str | None = None) -> httpx.Response:
    headers = {"WWW-Authenticate": challenge} if challenge else {}
    return httpx.Response(status, headers=headers, request=request)


INVALID_TOKEN = 'Bearer realm="svc", error="invalid_token", error_description="the token expired"'


def test_the_request_carries_the_cached_bearer_token(tokens: TokenClient, counted: TokenRequests) -> None:
    flow = ClientCredentialsAuth(tokens).sync_auth_flow(httpx.Request("GET", SERVICE))
    request = next(flow)
    assert request.headers["Authorization"] == f"Bearer {tokens.get_access_token()}"
    with pytest.raises(StopIteration):
        flow.send(answer(request, 200))
    assert counted.token == 1


def test_a_401_invalid_token_causes_one_refresh_and_one_retry(tokens: TokenClient, counted: TokenRequests) -> None:
    flow = ClientCredentialsAuth(tokens).sync_auth_flow(httpx.Request("GET", SERVICE))
    first = next(flow)
    rejected = first.headers["Authorization"]
    retry = flow.send(answer(first, 401, INVALID_TOKEN))
    assert retry.headers["Authorization"] != rejected
    assert retry.headers["Authorization"] == f"Bearer {tokens.get_access_token()}"  # the new token is cached
    with pytest.raises(StopIteration):  # a second invalid_token is the answer: no loop
        flow.send(answer(retry, 401, INVALID_TOKEN))
    assert counted.token == 2


@pytest.mark.parametrize(
    "status,challenge",
    [
        (401, "Bearer"),
        (401, 'Bearer realm="svc"'),
        (401, 'Basic realm="svc", error="invalid_token"'),
        (403, 'Bearer error="insufficient_scope", scope="admin"'),
        (403, INVALID_TOKEN),
        (500, None),
    ],
    ids=[
        "401 without an error",
        "401 with a realm only",
        "invalid_token of another scheme",
        "403 insufficient_scope",
        "403 even with invalid_token",
        "500",
    ],
)
def test_other_refusals_are_not_retried(
    status: int, challenge: str | None, tokens: TokenClient, counted: TokenRequests
) -> None:
    flow = ClientCredentialsAuth(tokens).sync_auth_flow(httpx.Request("GET", SERVICE))
    request = next(flow)
    with pytest.raises(StopIteration):
        flow.send(answer(request, status, challenge))
    assert counted.token == 1


def test_many_requests_rejected_with_the_same_token_cause_one_refresh(
    tokens: TokenClient, counted: TokenRequests
) -> None:
    auth = ClientCredentialsAuth(tokens)
    flows = [auth.sync_auth_flow(httpx.Request("GET", SERVICE)) for _ in range(10)]
    sent = [next(flow) for flow in flows]
    retries = [flow.send(answer(request, 401, INVALID_TOKEN)) for flow, request in zip(flows, sent, strict=True)]
    assert len({r.headers["Authorization"] for r in retries}) == 1
    assert counted.token == 2


def test_the_flow_asks_for_its_own_scope_and_audience(
    tokens: TokenClient, api: Api, registered: dict[str, Any]
) -> None:
    flow = ClientCredentialsAuth(tokens, scope="write").sync_auth_flow(httpx.Request("GET", SERVICE))
    token = next(flow).headers["Authorization"].removeprefix("Bearer ")
    assert api.introspect(registered, token).json()["scope"] == "write"


def test_the_async_flow_refreshes_once_on_invalid_token(server: ServerProcess, registered: dict[str, Any]) -> None:
    counted = TokenRequests()

    async def scenario() -> None:
        async with counted.async_client() as http:
            tokens = AsyncTokenClient(
                token_url=f"{server.url}/oauth/token",
                client_id=registered["client_id"],
                client_secret=registered["client_secret"],
                http_client=http,
            )
            flow = ClientCredentialsAuth(tokens).async_auth_flow(httpx.Request("GET", SERVICE))
            first = await flow.__anext__()
            rejected = first.headers["Authorization"]  # the flow sends the same request object again
            retry = await flow.asend(answer(first, 401, INVALID_TOKEN))
            assert retry.headers["Authorization"] != rejected
            with pytest.raises(StopAsyncIteration):
                await flow.asend(answer(retry, 401, INVALID_TOKEN))

            flow = ClientCredentialsAuth(tokens).async_auth_flow(httpx.Request("GET", SERVICE))
            request = await flow.__anext__()
            with pytest.raises(StopAsyncIteration):
                await flow.asend(answer(request, 403, 'Bearer error="insufficient_scope"'))

    asyncio.run(scenario())
    assert counted.token == 2


def test_a_token_client_of_the_wrong_kind_is_refused(tokens: TokenClient) -> None:
    async_tokens = AsyncTokenClient(token_url="http://x/oauth/token", client_id="c", client_secret="s")
    with pytest.raises(TypeError, match="TokenClient"):
        next(ClientCredentialsAuth(async_tokens).sync_auth_flow(httpx.Request("GET", SERVICE)))

    async def step() -> None:
        await ClientCredentialsAuth(tokens).async_auth_flow(httpx.Request("GET", SERVICE)).__anext__()

    with pytest.raises(TypeError, match="AsyncTokenClient"):
        asyncio.run(step())
