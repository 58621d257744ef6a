"""Three replicas on one PostgreSQL database behind nginx, as a deployment runs them.

Tokens issued anywhere introspect everywhere; a revocation, a client disable and a secret rotation
made through one replica's admin API hold on every replica within a second (the client cache keeps
its default 5 s TTL: only the database's notifications can be that quick); a replica killed under
load costs the callers nothing nginx could retry and loses no token it issued; a rolling restart
under load shows no error; a request in flight when SIGTERM arrives is still answered.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from functools import partial
from urllib.parse import urlencode

import httpx
import pytest

from .._server import Api, ServerProcess, basic_header
from .conftest import Client, Cluster, Load, inactive_tokens

pytestmark = pytest.mark.postgres

PROPAGATION = 1.0  # seconds: the bound the issue sets for a change to reach every replica


def holds_within(seconds: float, check: Callable[[], bool]) -> bool:
    """Poll check() until it holds or `seconds` passed; the last answer."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() >= deadline:
            return check()
        time.sleep(0.02)
    return True


def introspects_active(api: Api, caller: Client, token: str) -> bool:
    response = api.introspect(caller, token)
    assert response.status_code == 200, response.text
    return response.json()["active"] is True


def refuses(api: Api, client: Client) -> bool:
    return api.token(client).status_code == 401


@pytest.mark.parametrize("token_format", ["opaque", "jwt"], ids=["opaque tokens", "jwt access tokens"])
def test_tokens_issued_through_any_replica_or_nginx_introspect_active_on_every_replica(
    running: Cluster, token_format: str
) -> None:
    owner = running.lb_api.create_client(client_name="caller", access_token_format=token_format)
    resource = running.lb_api.create_client(client_name="resource server")

    tokens = [api.access_token(owner) for api in running.apis]
    tokens += [running.lb_api.access_token(owner) for _ in range(3)]  # nginx spreads them over the replicas

    for token in tokens:
        assert all(introspects_active(api, resource, token) for api in running.apis)


def test_a_revocation_on_one_replica_is_seen_at_once_by_the_others(running: Cluster) -> None:
    first, *others = running.apis
    owner = first.create_client(client_name="caller")
    resource = first.create_client(client_name="resource server")
    token = first.access_token(owner)
    assert all(introspects_active(api, resource, token) for api in others)

    assert first.revoke(owner, token).status_code == 200

    assert not any(introspects_active(api, resource, token) for api in others)


def test_a_client_disabled_on_one_replica_gets_no_token_from_any_replica_within_a_second(running: Cluster) -> None:
    first, *others = running.apis
    owner = first.create_client(client_name="to be disabled")
    resource = first.create_client(client_name="resource server")
    tokens = [api.access_token(owner) for api in running.apis]  # every replica now caches the client

    response = first.admin("PATCH", f"/admin/clients/{owner['client_id']}", json={"disabled": True})
    assert response.status_code == 200, response.text

    for api in others:
        assert holds_within(PROPAGATION, partial(refuses, api, owner)), api.url
        assert api.token(owner).json()["error"] == "invalid_client"
    for token in tokens:
        assert not any(introspects_active(api, resource, token) for api in running.apis)


def rotate_without_grace(api: Api, client: Client) -> Client:
    response = api.admin("POST", f"/admin/clients/{client['client_id']}/secret", json={"grace_period": 0})
    assert response.status_code == 200, response.text
    return {**client, "client_secret": response.json()["client_secret"]}


def test_after_a_secret_rotation_without_grace_the_old_secret_fails_on_every_replica_within_a_second(
    running: Cluster,
) -> None:
    first = running.apis[0]
    old = first.create_client(client_name="rotated")
    for api in running.apis:
        api.access_token(old)  # every replica now caches the client with its old secret

    rotate_without_grace(first, old)

    for api in running.apis:
        assert holds_within(PROPAGATION, partial(refuses, api, old)), api.url


def test_after_a_secret_rotation_the_new_secret_works_on_every_replica_at_once(running: Cluster) -> None:
    first = running.apis[0]
    old = first.create_client(client_name="rotated")
    for api in running.apis:
        api.access_token(old)

    new = rotate_without_grace(first, old)

    for api in running.apis:
        assert api.token(new).status_code == 200, api.url


def load_clients(running: Cluster) -> tuple[list[Client], Client]:
    callers = [
        running.lb_api.create_client(client_name="load, opaque", access_token_format="opaque"),
        running.lb_api.create_client(client_name="load, jwt", access_token_format="jwt"),
    ]
    return callers, running.lb_api.create_client(client_name="resource server")


def test_a_replica_killed_under_load_loses_no_request_nginx_could_retry_and_no_issued_token(running: Cluster) -> None:
    callers, resource = load_clients(running)
    victim = running.replicas[1]
    assert victim.proc is not None

    with Load(running.lb.url, callers) as load:
        load.wait_for(50)
        victim.proc.kill()  # SIGKILL: no graceful shutdown, connections simply drop
        victim.proc.wait()
        load.wait_for(len(load.tokens) + 300)  # keep the load on with one replica gone

    assert load.failures == [], running.lb.log()
    # Only a response the victim had begun to write can break off: uvicorn writes the status line and
    # headers, then the body, in two writes; a SIGKILL between them leaves nginx holding half a response
    # it has already passed on. At most one request per client was in flight when the victim died.
    assert len(load.cut_short) <= load.workers, load.cut_short
    assert all(failure.startswith("200, then") for failure in load.cut_short), load.cut_short
    survivors = [r.url for r in running.replicas if r is not victim]
    assert inactive_tokens(survivors, resource, load.tokens) == 0, f"of {len(load.tokens)} tokens"


def test_a_rolling_restart_under_load_shows_no_error(running: Cluster) -> None:
    callers, resource = load_clients(running)

    with Load(running.lb.url, callers) as load:
        load.wait_for(50)
        for replica in running.replicas:
            assert replica.proc is not None
            replica.proc.send_signal(signal.SIGTERM)
            replica.proc.wait(40)
            assert shut_down_cleanly(replica), replica.log()
            replica.start()  # the same port again; start() returns once /healthz answers
            load.wait_for(len(load.tokens) + 100)  # traffic flows again before the next one goes

    assert load.failures == [], running.lb.log()
    assert load.cut_short == [], running.lb.log()
    assert inactive_tokens([r.url for r in running.replicas], resource, load.tokens) == 0


def test_a_request_in_flight_when_sigterm_arrives_is_answered_and_the_server_exits(running: Cluster) -> None:
    replica = running.replicas[2]
    assert replica.proc is not None
    owner = running.apis[0].create_client(client_name="caller")
    resource = running.apis[0].create_client(client_name="resource server")
    body = urlencode({"grant_type": "client_credentials"}).encode()
    head = (
        f"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1:{replica.port}\r\n"
        f"Authorization: {basic_header(owner['client_id'], owner['client_secret'])['Authorization']}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()

    with socket.create_connection(("127.0.0.1", replica.port), timeout=30) as conn:
        conn.sendall(head)
        # The server says "100 Continue" when the endpoint starts reading the body: the request is in flight.
        assert conn.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.sendall(body[:10])
        replica.proc.send_signal(signal.SIGTERM)
        assert holds_within(10, lambda: refuses_connections(replica.port)), "the server did not begin to shut down"
        conn.sendall(body[10:])
        status_line, _, rest = read_until_closed(conn).partition(b"\r\n")

    assert status_line == b"HTTP/1.1 200 OK", rest[:500]
    token = httpx.Response(200, content=rest.partition(b"\r\n\r\n")[2]).json()["access_token"]
    replica.proc.wait(30)
    assert shut_down_cleanly(replica), replica.log()
    assert introspects_active(running.apis[0], resource, token)


def shut_down_cleanly(replica: ServerProcess) -> bool:
    """The process ran its shutdown to the end (uvicorn then re-raises SIGTERM: exit status -15, or 143 in a shell)."""
    assert replica.proc is not None
    last_run = replica.log().rpartition("Started server process")[2]
    return replica.proc.returncode in (0, -signal.SIGTERM) and "Application shutdown complete." in last_run


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def read_until_closed(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
