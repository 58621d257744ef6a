"""Introspection answers active tokens from a per-process cache that every revocation reaches.

On PostgreSQL a token introspected once is answered without reading the database until a
revocation is announced (NOTIFY): by this replica, by another one, or by a listener that
reconnected and so drops everything. A revocation through one replica is answered only after
the others forgot the token. SQLite has no notifications: it never caches.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from m2m_auth.server.core.introspection_cache import IntrospectionCache
from m2m_auth.server.core.models import TokenRecord
from m2m_auth.server.storage.sql.changes import APPLICATION_NAME, CHANNEL, ECHO_TIMEOUT, ChangeListener, Echo, announce
from m2m_auth.server.storage.sql.engine import create_engine

from .._pg import PostgresCluster
from .._server import Api, ServerProcess
from ..purge._db import metric, query, wait_until


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def revoke_without_notification(database_url: str, token: str) -> None:
    """Behind the server's back: what a cache that ignored notifications would miss."""
    query(
        database_url,
        "UPDATE tokens SET revoked_at = :now WHERE digest = :digest",
        now=int(time.time()),
        digest=digest(token),
    )


def active(api: Api, caller: dict[str, Any], token: str) -> bool:
    response = api.introspect(caller, token)
    assert response.status_code == 200, response.text
    return response.json()["active"] is True


def cache_hits(api: Api) -> float:
    return metric(api.url, "m2m_auth_introspection_cache_lookups_total", result="hit")


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_token_is_answered_from_the_cache_until_its_revocation_is_announced(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory()
    api = Api(server.url)
    wait_until(lambda: metric(api.url, "m2m_auth_introspection_cache_enabled") == 1, "the cache answers")
    owner, resource = api.create_client(client_name="owner"), api.create_client(client_name="resource")
    token = api.access_token(owner)
    assert active(api, resource, token)
    hits = cache_hits(api)

    revoke_without_notification(server.database_url, token)
    assert active(api, resource, token)  # the database was not read: it would have said revoked
    assert cache_hits(api) == hits + 1

    query(
        server.database_url, "SELECT pg_notify(:channel, :topic)", channel=CHANNEL, topic="token:" + digest(token).hex()
    )
    wait_until(lambda: not active(api, resource, token), "the announced revocation reached the cache", timeout=1)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("token_format", ["opaque", "jwt"])
def test_a_revocation_through_one_replica_is_answered_only_once_the_other_forgot_the_token(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[str], str], token_format: str
) -> None:
    url = database_factory("postgres")
    a, b = (
        Api(server_factory(url, issuer="http://replicas.invalid").url) for _ in range(2)
    )  # one issuer, as a deployment
    for api in (a, b):
        wait_until(lambda api=api: metric(api.url, "m2m_auth_introspection_cache_enabled") == 1, "caches answer")
    owner = a.create_client(client_name="owner", access_token_format=token_format)
    resource = a.create_client(client_name="resource")
    for _ in range(10):  # no polling below: each round would catch a revocation answered too early
        token = a.access_token(owner)
        assert active(b, resource, token) and active(b, resource, token)  # cached on b
        hits = cache_hits(b)
        assert a.revoke(owner, token).status_code == 200
        assert not active(b, resource, token)
        assert not active(a, resource, token)
    assert hits > 0


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_client_disabled_on_one_replica_has_no_cached_token_left_on_the_other(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[str], str]
) -> None:
    url = database_factory("postgres")
    a, b = Api(server_factory(url).url), Api(server_factory(url).url)
    owner, resource = a.create_client(client_name="owner"), a.create_client(client_name="resource")
    token = a.access_token(owner)
    wait_until(lambda: metric(b.url, "m2m_auth_introspection_cache_enabled") == 1, "b's cache answers")
    assert active(b, resource, token)
    assert a.admin("PATCH", f"/admin/clients/{owner['client_id']}", json={"disabled": True}).status_code == 200
    # Re-enabled at once, behind b's back: only the token's revocation (in the same transaction) holds now.
    query(url, "UPDATE clients SET disabled = false WHERE client_id = :id", id=owner["client_id"])
    wait_until(lambda: not active(b, resource, token), "b forgot the client's tokens", timeout=1)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_listener_that_reconnects_drops_every_cached_token(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    api = Api(server.url)
    listeners = "SELECT pid FROM pg_stat_activity WHERE application_name = :name AND datname = current_database()"
    wait_until(lambda: len(query(server.database_url, listeners, name=APPLICATION_NAME)) == 1, "listening")
    owner, resource = api.create_client(client_name="owner"), api.create_client(client_name="resource")
    token = api.access_token(owner)
    assert active(api, resource, token) and active(api, resource, token)

    query(server.database_url, f"SELECT pg_terminate_backend(pid) FROM ({listeners}) AS l", name=APPLICATION_NAME)
    revoke_without_notification(server.database_url, token)  # missed: nobody listened (or nothing was sent)
    wait_until(lambda: len(query(server.database_url, listeners, name=APPLICATION_NAME)) == 1, "listening again")
    wait_until(lambda: metric(api.url, "m2m_auth_introspection_cache_enabled") == 1, "the cache answers again")
    assert not active(api, resource, token)


@pytest.mark.parametrize(
    ("backend", "settings"),
    [("sqlite", {}), ("postgres", {"introspection_cache_size": 0})],
    ids=["sqlite", "postgres with the cache off"],
    indirect=["backend"],
)
def test_without_a_cache_every_introspection_reads_the_database(
    server_factory: Callable[..., ServerProcess], settings: dict[str, Any]
) -> None:
    server = server_factory(**settings)
    api = Api(server.url)
    owner, resource = api.create_client(client_name="owner"), api.create_client(client_name="resource")
    token = api.access_token(owner)
    assert active(api, resource, token) and active(api, resource, token)
    revoke_without_notification(server.database_url, token)
    assert not active(api, resource, token)
    assert metric(api.url, "m2m_auth_introspection_cache_enabled") == 0
    assert cache_hits(api) == 0


@pytest.mark.postgres
def test_a_change_waits_for_its_own_notification_and_at_most_the_echo_timeout_when_none_comes(
    pg_cluster: PostgresCluster,
) -> None:
    url = pg_cluster.create_database("echo_timeout")

    async def run() -> tuple[float, float, float, int]:
        engine = create_engine(url)
        heard: list[str] = []
        listener = ChangeListener(engine, heard.append)
        task = asyncio.create_task(listener.run_forever())
        try:
            await asyncio.wait_for(listener.connected.wait(), 20)
            clock = asyncio.get_running_loop().time
            start = clock()
            async with Echo(listener, "token:aa") as echo:
                async with engine.begin() as conn:
                    await announce(conn, "token:aa")
                echo.announced = True
            announced = clock() - start
            assert "token:aa" in heard  # left only once its own listener had it

            start = clock()
            async with Echo(listener, "token:bb") as echo:
                echo.announced = True  # a commit whose notification never comes back
            lost = clock() - start

            start = clock()
            async with Echo(listener, "token:cc"):
                pass  # nothing announced (a revocation of an unknown token): nothing to wait for
            unannounced = clock() - start
            return announced, lost, unannounced, len(listener._waiters)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await engine.dispose()

    announced, lost, unannounced, waiting = asyncio.run(run())
    assert announced < ECHO_TIMEOUT / 2
    assert ECHO_TIMEOUT <= lost < ECHO_TIMEOUT + 1
    assert unannounced < 0.1
    assert waiting == 0  # no waiter is left behind


# --- the cache on its own ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def now(self) -> float:
        return self.t


def record(n: int, client_id: str = "c1") -> TokenRecord:
    return TokenRecord(bytes([n]) * 32, client_id, ("read",), ("api",), 1_000_000, 1_000_600)


def live_cache(clock: FakeClock, **options: Any) -> IntrospectionCache:
    return IntrospectionCache(clock, **{"max_entries": 10, "ttl": 60.0, **options}, live=lambda: True)


def test_a_lookup_that_started_before_a_revocation_was_heard_does_not_fill_the_cache() -> None:
    cache = live_cache(FakeClock())
    started = cache.generation  # a lookup begins: the database still says active
    cache.forget(record(1).digest)  # the revocation is heard while it runs
    cache.put(record(1).digest, record(1), started)
    assert cache.get(record(1).digest) is None

    cache.put(record(1).digest, record(1), cache.generation)
    assert cache.get(record(1).digest) == record(1)


def test_entries_expire_after_the_ttl_and_the_oldest_goes_first_when_full() -> None:
    clock = FakeClock()
    cache = live_cache(clock, max_entries=2)
    for n in (1, 2, 3):
        cache.put(record(n).digest, record(n), cache.generation)
    assert cache.get(record(1).digest) is None and cache.get(record(3).digest) == record(3)
    clock.t += 60
    assert cache.get(record(3).digest) is None and len(cache) == 1


def test_forgetting_a_client_drops_its_tokens_only_and_revoked_records_are_never_kept() -> None:
    cache = live_cache(FakeClock())
    mine, theirs = record(1, "mine"), record(2, "theirs")
    for r in (mine, theirs):
        cache.put(r.digest, r, cache.generation)
    cache.forget_client("mine")
    assert cache.get(mine.digest) is None and cache.get(theirs.digest) == theirs

    revoked = TokenRecord(bytes(32), "c1", (), (), 1, 2, revoked_at=1)
    cache.put(revoked.digest, revoked, cache.generation)
    assert cache.get(revoked.digest) is None


def test_a_cache_that_is_not_live_or_has_no_room_keeps_nothing() -> None:
    for cache in (
        IntrospectionCache(FakeClock(), max_entries=10, ttl=60, live=lambda: False),
        IntrospectionCache(FakeClock(), max_entries=0, ttl=60, live=lambda: True),
    ):
        assert not cache.enabled
        cache.put(record(1).digest, record(1), cache.generation)
        assert len(cache) == 0
