"""Servers that sign JWTs, shared by the files that only read from them (one per algorithm and backend)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .._server import Api, ServerProcess

# Not the default (300): tests can tell that the setting reaches the header.
JWKS_MAX_AGE = 123


@pytest.fixture(scope="session")
def signing_server(backend: str, database_factory: Callable[[str], str]) -> Iterator[Callable[[str], ServerProcess]]:
    """alg -> a running server whose keys use it, with JWT as the default token format.

    Started on first use. Tests may register clients and revoke their tokens; none rotates keys here.
    """
    started: dict[str, ServerProcess] = {}

    def get(alg: str) -> ServerProcess:
        if alg not in started:
            started[alg] = ServerProcess(
                database_factory(backend),
                signing_alg=alg,
                access_token_format="jwt",
                jwks_max_age=JWKS_MAX_AGE,
            ).start()
        return started[alg]

    yield get
    for proc in started.values():
        proc.stop()


@pytest.fixture(scope="module")
def jwt_server(signing_server: Callable[[str], ServerProcess]) -> ServerProcess:
    return signing_server("RS256")


@pytest.fixture(scope="module")
def jwt_api(jwt_server: ServerProcess) -> Iterator[Api]:
    client = Api(jwt_server.url)
    yield client
    client.close()
