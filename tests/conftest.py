"""Fixtures: real server processes on SQLite and on a throw-away PostgreSQL cluster."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ._pg import PostgresCluster, find_pg_bin
from ._server import Api, ServerProcess

BACKENDS = ["sqlite", "postgres"]
_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries not found; the test command installs them (scripts/test.sh)")
        pytest.skip("PostgreSQL binaries not found (run scripts/test.sh to install them)")
    cluster = PostgresCluster(bin_dir)
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def database_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """backend name -> URL of a new, empty database."""

    def make(backend: str) -> str:
        n = next(_db_counter)
        if backend == "sqlite":
            path: Path = tmp_path_factory.mktemp("sqlite") / f"m2m-auth-{n}.db"
            return f"sqlite:///{path}"
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        return cluster.create_database(f"m2m_auth_{n}")

    return make


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def server(backend: str, database_factory: Callable[[str], str]) -> Iterator[ServerProcess]:
    """One shared server per backend; tests isolate themselves by registering their own clients."""
    proc = ServerProcess(database_factory(backend)).start()
    yield proc
    proc.stop()


@pytest.fixture
def server_factory(backend: str, database_factory: Callable[[str], str]) -> Iterator[Callable[..., ServerProcess]]:
    """Servers with settings of their own (each on a new database unless one is given)."""
    started: list[ServerProcess] = []

    def make(database_url: str | None = None, **settings: Any) -> ServerProcess:
        proc = ServerProcess(database_url or database_factory(backend), **settings).start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[Api]:
    """One HTTP client per module: building an httpx.Client costs about 50 ms."""
    client = Api(server.url)
    yield client
    client.close()
