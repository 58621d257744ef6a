"""Retries with backoff: 503 and 429 (honouring Retry-After), network errors, and what is not retried.

Our server cannot be told to answer 503 on demand, so a scripted endpoint in a thread answers first and then
forwards to the real server (tests/sdk/_support.py). Waits go to a recorder: no test sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from m2m_auth.client import AsyncTokenClient, TokenClient
from m2m_auth.client.token_client import BACKOFF_BASE, BACKOFF_CAP, RETRY_AFTER_CAP
from m2m_auth.errors import ServerError, TemporarilyUnavailable

from .._pg import free_port
from .._server import Api, ServerProcess
from ._support import AsyncSleepRecorder, FlakyTokenEndpoint, Scripted, SleepRecorder

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

UNAVAILABLE = {"error": "temporarily_unavailable", "error_description": "database unreachable"}


@pytest.fixture(scope="module")
def registered(api: Api) -> dict[str, Any]:
    return api.create_client(client_name="retrying caller", scope="read")


def _client(
    endpoint: FlakyTokenEndpoint, registered: dict[str, Any], sleep: SleepRecorder, **options: Any
) -> TokenClient:
    return TokenClient(
        token_url=endpoint.token_url,
        client_id=registered["client_id"],
        client_secret=registered["client_secret"],
        sleep=sleep,
        **options,
    )


@sqlite_only
def test_a_503_with_retry_after_is_retried_after_the_time_it_names(
    server: ServerProcess, api: Api, registered: dict[str, Any]
) -> None:
    script = [Scripted(503, {"Retry-After": "2"}, UNAVAILABLE), Scripted(502)]
    sleep = SleepRecorder()
    with FlakyTokenEndpoint(server.url, script) as endpoint, _client(endpoint, registered, sleep) as tokens:
        token = tokens.get_token()
    assert api.introspect(registered, token.access_token).json()["active"] is True
    assert endpoint.seen == ["POST /oauth/token"] * 3
    assert sleep.delays[0] == 2.0
    assert 0 <= sleep.delays[1] <= BACKOFF_BASE * 2  # no Retry-After on the 502: jittered backoff


@sqlite_only
def test_a_429_is_retried_and_a_long_retry_after_is_capped(server: ServerProcess, registered: dict[str, Any]) -> None:
    script = [Scripted(429, {"Retry-After": "3600"}, {"error": "slow_down"})]
    sleep = SleepRecorder()
    with FlakyTokenEndpoint(server.url, script) as endpoint, _client(endpoint, registered, sleep) as tokens:
        tokens.get_token()
    assert sleep.delays == [RETRY_AFTER_CAP]


@sqlite_only
def test_the_last_5xx_is_raised_as_a_typed_error_after_the_retries(
    server: ServerProcess, registered: dict[str, Any]
) -> None:
    script = [Scripted(503, {}, UNAVAILABLE)] * 3 + [Scripted(500)]
    sleep = SleepRecorder()
    with (
        FlakyTokenEndpoint(server.url, script) as endpoint,
        _client(endpoint, registered, sleep) as tokens,
        pytest.raises(ServerError) as caught,
    ):
        tokens.get_token()
    assert (caught.value.error, caught.value.status) == ("server_error", 500)
    assert len(endpoint.seen) == 4 and len(sleep.delays) == 3
    # Full jitter, exponential: attempt n waits somewhere in [0, min(cap, base * 2**n)].
    assert all(0 <= d <= min(BACKOFF_CAP, BACKOFF_BASE * 2**n) for n, d in enumerate(sleep.delays))


@sqlite_only
def test_a_temporarily_unavailable_body_keeps_its_code(server: ServerProcess, registered: dict[str, Any]) -> None:
    sleep = SleepRecorder()
    script = [Scripted(503, {"Retry-After": "1"}, UNAVAILABLE)] * 2
    with (
        FlakyTokenEndpoint(server.url, script) as endpoint,
        _client(endpoint, registered, sleep, max_retries=1) as tokens,
        pytest.raises(TemporarilyUnavailable) as caught,
    ):
        tokens.get_token()
    assert caught.value.description == "database unreachable" and caught.value.status == 503
    assert sleep.delays == [1.0]


def test_an_unreachable_server_is_retried_then_the_network_error_raised() -> None:
    sleep = SleepRecorder()
    with (
        TokenClient(
            token_url=f"http://127.0.0.1:{free_port()}/oauth/token",
            client_id="c",
            client_secret="s",
            max_retries=3,
            sleep=sleep,
        ) as tokens,
        pytest.raises(httpx.ConnectError),
    ):
        tokens.get_token()
    assert len(sleep.delays) == 3


@sqlite_only
def test_the_async_client_retries_too(server: ServerProcess, registered: dict[str, Any]) -> None:
    sleep = AsyncSleepRecorder()

    async def scenario(endpoint: FlakyTokenEndpoint) -> str:
        async with AsyncTokenClient(
            token_url=endpoint.token_url,
            client_id=registered["client_id"],
            client_secret=registered["client_secret"],
            sleep=sleep,
        ) as tokens:
            return await tokens.get_access_token()

    with FlakyTokenEndpoint(server.url, [Scripted(503, {"Retry-After": "1"}, UNAVAILABLE)]) as endpoint:
        assert asyncio.run(scenario(endpoint))
    assert sleep.delays == [1.0]
    assert len(endpoint.seen) == 2


@sqlite_only
def test_discovery_refuses_metadata_for_another_issuer(server: ServerProcess, registered: dict[str, Any]) -> None:
    metadata = {"issuer": "https://evil.example", "token_endpoint": "https://evil.example/oauth/token"}
    with FlakyTokenEndpoint(server.url, [], metadata=metadata) as endpoint:
        with (
            TokenClient(issuer=endpoint.url, client_id=registered["client_id"], client_secret="s") as tokens,
            pytest.raises(ServerError, match="issuer"),
        ):
            tokens.get_token()
        assert endpoint.seen == ["GET /.well-known/oauth-authorization-server"]
