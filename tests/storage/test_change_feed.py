"""Client and key changes made on one replica reach the caches of the others through PostgreSQL NOTIFY.

The client cache keeps its default TTL (5 s) here: a change seen within a second came by notification.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from m2m_auth.server.storage.sql.changes import APPLICATION_NAME

from .._server import Api, ServerProcess
from ..purge._db import metric, query, wait_until

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def within_a_second(check: Callable[[], bool]) -> float:
    """Seconds until check() held; fails the test if it did not within one second."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < 1.0, "the change did not reach the other replica within one second"
        time.sleep(0.02)
    return time.monotonic() - start


def status(response: httpx.Response) -> int:
    return response.status_code


@pytest.fixture
def replicas(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[str], str]
) -> tuple[ServerProcess, ServerProcess]:
    url = database_factory("postgres")
    first = server_factory(url)
    return first, server_factory(url)


def test_a_disable_and_a_secret_rotation_on_one_replica_take_effect_on_the_other_within_a_second(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = (Api(r.url) for r in replicas)
    client = a.create_client(client_name="rotated")
    assert status(b.token(client)) == 200  # b now caches the client and its secret

    rotated = a.admin("POST", f"/admin/clients/{client['client_id']}/secret", json={"grace_period": 0}).json()
    within_a_second(lambda: status(b.token(client)) == 401)
    assert status(b.token({**client, "client_secret": rotated["client_secret"]})) == 200

    fresh = {**client, "client_secret": rotated["client_secret"]}
    token = b.access_token(fresh)
    assert a.admin("PATCH", f"/admin/clients/{client['client_id']}", json={"disabled": True}).status_code == 200
    within_a_second(lambda: status(b.token(fresh)) != 200)
    assert b.token(fresh).json()["error"] == "invalid_client"
    introspector = b.create_client(client_name="introspector")
    assert b.introspect(introspector, token).json() == {"active": False}


def test_a_disable_or_a_rotation_answered_by_one_replica_already_holds_on_the_other(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = (Api(r.url) for r in replicas)
    wait_until(lambda: metric(a.url, "m2m_auth_change_feed_connected") == 1, "a listens")
    for n in range(5):  # no polling: the admin API answers once its own notification came back
        client = a.create_client(client_name=f"changed {n}")
        assert status(b.token(client)) == 200  # b caches the client and its secret
        rotated = a.admin("POST", f"/admin/clients/{client['client_id']}/secret", json={"grace_period": 0})
        assert status(b.token(client)) == 401
        fresh = {**client, "client_secret": rotated.json()["client_secret"]}
        assert status(b.token(fresh)) == 200
        assert a.admin("PATCH", f"/admin/clients/{client['client_id']}", json={"disabled": True}).status_code == 200
        assert status(b.token(fresh)) == 401


def test_a_key_rotated_on_one_replica_is_published_by_the_other_within_a_second(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = (Api(r.url) for r in replicas)
    before = {k["kid"] for k in b.http.get("/oauth/jwks.json").json()["keys"]}
    rotated = a.admin("POST", "/admin/keys/rotate", json={})
    assert rotated.status_code in (200, 201), rotated.text
    new = {k["kid"] for k in a.http.get("/oauth/jwks.json").json()["keys"]} - before
    assert len(new) == 1
    within_a_second(lambda: new <= {k["kid"] for k in b.http.get("/oauth/jwks.json").json()["keys"]})


def test_a_replica_that_loses_its_listener_connection_reconnects_and_hears_changes_again(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = (Api(r.url) for r in replicas)
    url = replicas[0].database_url
    listeners = "SELECT pid FROM pg_stat_activity WHERE application_name = :name AND datname = current_database()"
    wait_until(lambda: len(query(url, listeners, name=APPLICATION_NAME)) == 2, "both replicas listening")
    assert metric(b.url, "m2m_auth_change_feed_connected") == 1

    query(url, f"SELECT pg_terminate_backend(pid) FROM ({listeners}) AS l", name=APPLICATION_NAME)
    wait_until(lambda: len(query(url, listeners, name=APPLICATION_NAME)) == 2, "both replicas listening again")
    wait_until(lambda: metric(b.url, "m2m_auth_change_feed_connected") == 1, "b's feed reported up")

    client = a.create_client(client_name="after the reconnection")
    assert status(b.token(client)) == 200
    a.admin("PATCH", f"/admin/clients/{client['client_id']}", json={"disabled": True})
    within_a_second(lambda: status(b.token(client)) != 200)
