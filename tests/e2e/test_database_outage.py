"""The database goes away under a running server, then comes back.

While it is gone, every request that needs it answers 503 `temporarily_unavailable` with Retry-After
(never a 500), /readyz says not ready and /healthz stays up (so the orchestrator does not restart a
healthy process). When it is back, the same process serves again without a restart, and nothing
issued before the outage was lost.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from .._pg import PostgresCluster, find_pg_bin
from .._server import Api, ServerProcess

RECOVERY_DEADLINE = 15.0  # seconds


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    """A cluster of this test's own: stopping it must not disturb the shared one other tests use."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries not found; the test command installs them (scripts/test.sh)")
        pytest.skip("PostgreSQL binaries not found (run scripts/test.sh to install them)")
    cluster = PostgresCluster(bin_dir)
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def running() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for proc in started:
        proc.stop()


def assert_unavailable(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:300]}"
    assert response.status_code == 503, where
    assert response.json()["error"] == "temporarily_unavailable", where
    assert int(response.headers["Retry-After"]) > 0, where


def on_own_connection(url: str, call: Callable[[Api], httpx.Response]) -> httpx.Response:
    """For requests sent side by side: each thread gets a client (and so a connection) of its own."""
    api = Api(url)
    try:
        return call(api)
    finally:
        api.close()


def wait_for_token(api: Api, client: dict[str, Any]) -> str:
    """Poll until the server issues again; every answer on the way is a 503, never a 500."""
    deadline = time.monotonic() + RECOVERY_DEADLINE
    while True:
        response = api.token(client)
        if response.status_code == 200:
            return str(response.json()["access_token"])
        assert_unavailable(response)
        assert time.monotonic() < deadline, f"the server did not recover within {RECOVERY_DEADLINE} s"
        time.sleep(0.2)


def test_postgres_outage_answers_503_and_the_same_process_recovers(
    own_cluster: PostgresCluster, running: list[ServerProcess]
) -> None:
    server = ServerProcess(own_cluster.create_database("outage")).start()
    running.append(server)
    pid = server.proc.pid if server.proc else None
    api = Api(server.url)
    client = api.create_client(scope="read write", audience=["svc-a"])
    before = api.access_token(client, scope="read")

    own_cluster.stop("fast")

    assert_unavailable(api.token(client))
    assert_unavailable(api.introspect(client, before))
    assert_unavailable(api.revoke(client, before))
    assert_unavailable(api.admin("GET", "/admin/clients"))
    assert_unavailable(api.admin("POST", "/admin/clients", json={"client_name": "during the outage"}))
    assert_unavailable(api.http.get("/readyz"))
    assert api.http.get("/healthz").status_code == 200

    own_cluster.start()

    after = wait_for_token(api, client)
    assert server.proc is not None and server.proc.poll() is None and server.proc.pid == pid  # not restarted
    assert api.http.get("/readyz").status_code == 200
    # The pool holds no dead connections any more: a burst on several connections at once all succeeds.
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda token: on_own_connection(server.url, lambda a: a.introspect(client, token)), [after, before] * 8
            )
        )
    for answer in answers:
        assert answer.status_code == 200 and answer.json()["active"] is True, answer.text
    # The refused revocation did not half-happen: the token issued before the outage is still good.
    body = api.introspect(client, before).json()
    assert body["active"] is True and body["scope"] == "read" and body["aud"] == "svc-a"
    assert api.revoke(client, before).status_code == 200
    assert api.introspect(client, before).json() == {"active": False}
    assert "unexpected error" not in server.log()  # the 500 handler's log line


def test_sqlite_write_locked_by_another_process_answers_503_until_the_lock_is_released(
    tmp_path: Path, running: list[ServerProcess]
) -> None:
    # Which SQLite unavailability is realistic here: running as root, permissions do not bite, and a removed
    # file or directory does not stop open connections (they go on writing into the unlinked file). Another
    # process holding the write lock (a sqlite3 shell or a script left in a transaction) does stop writes.
    path = tmp_path / "m2m-auth.db"
    server = ServerProcess(f"sqlite:///{path}").start()
    running.append(server)
    api = Api(server.url)
    client = api.create_client(scope="read", audience=["svc-a"])
    before = api.access_token(client)

    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        # Each write waits out SQLite's busy timeout before it gives up, so they wait side by side.
        with ThreadPoolExecutor(3) as pool:
            calls: list[Callable[[Api], httpx.Response]] = [
                lambda a: a.token(client),
                lambda a: a.revoke(client, before),
                lambda a: a.admin("POST", "/admin/clients", json={"client_name": "locked"}),
            ]
            writes = [pool.submit(on_own_connection, server.url, call) for call in calls]
            for write in writes:
                assert_unavailable(write.result())
        # WAL: readers are not blocked by the writer, so resource servers can still check tokens.
        assert api.introspect(client, before).json()["active"] is True
        assert api.http.get("/healthz").status_code == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    after = wait_for_token(api, client)
    assert api.introspect(client, after).json()["active"] is True
    assert api.introspect(client, before).json()["active"] is True  # the refused revocation did not happen
    assert "unexpected error" not in server.log()
