"""Real servers purge expired rows by themselves, on SQLite and PostgreSQL, without changing any answer.

Each server here runs with a purge interval of half a second, so expired rows go within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from .._server import Api, ServerProcess
from ._db import metric, plant_expired_tokens, query, scalar, wait_until

FAST = {"purge_interval": 0.5}


def stored_tokens(server: ServerProcess, client_id: str) -> int:
    return int(scalar(server.database_url, "SELECT count(*) FROM tokens WHERE client_id = :c", c=client_id))


def test_tokens_with_a_one_second_ttl_are_gone_from_storage_seconds_after_expiry_and_live_ones_stay(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(**FAST)
    api = Api(server.url)
    short = api.create_client(client_name="fetches a token per call", access_token_ttl=1)
    steady = api.create_client(client_name="caches its token")
    expiring = [api.access_token(short) for _ in range(20)]
    live = [api.access_token(steady) for _ in range(5)]

    wait_until(lambda: stored_tokens(server, short["client_id"]) == 0, "the expired rows are purged")

    assert stored_tokens(server, steady["client_id"]) == 5
    for token in live:
        assert api.introspect(steady, token).json()["active"] is True
    for token in expiring:
        assert api.introspect(steady, token).json() == {"active": False}
    assert metric(server.url, "m2m_auth_purged_rows_total", table="tokens") >= 20
    assert metric(server.url, "m2m_auth_purge_rounds_total", result="purged") >= 1
    assert metric(server.url, "m2m_auth_purge_rounds_total", result="failed") == 0
    assert metric(server.url, "m2m_auth_purge_duration_seconds_count") >= 1
    assert abs(metric(server.url, "m2m_auth_purge_last_success_timestamp_seconds") - time.time()) < 60
    wait_until(lambda: metric(server.url, "m2m_auth_live_tokens") == 5, "the live-token gauge counts the 5")
    api.close()


def test_a_revoked_token_keeps_its_row_until_it_would_have_expired_and_introspects_inactive_before_and_after(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(**FAST)
    api = Api(server.url)
    long_lived = api.create_client(client_name="long-lived tokens")
    short_lived = api.create_client(client_name="one-second tokens", access_token_ttl=1)
    kept = api.access_token(long_lived)
    purged = api.access_token(short_lived)
    assert api.revoke(long_lived, kept).status_code == 200
    assert api.revoke(short_lived, purged).status_code == 200
    assert api.introspect(long_lived, kept).json() == {"active": False}
    assert api.introspect(long_lived, purged).json() == {"active": False}

    wait_until(lambda: stored_tokens(server, short_lived["client_id"]) == 0, "the expired revoked row is purged")
    rounds = metric(server.url, "m2m_auth_purge_rounds_total", result="purged")
    wait_until(
        lambda: metric(server.url, "m2m_auth_purge_rounds_total", result="purged") >= rounds + 2, "two more rounds"
    )

    assert stored_tokens(server, long_lived["client_id"]) == 1  # revoked, not expired: the row stays
    assert api.introspect(long_lived, kept).json() == {"active": False}
    assert api.introspect(long_lived, purged).json() == {"active": False}
    assert api.introspect(short_lived, purged).json() == {"active": False}
    api.close()


def test_expired_deny_list_entries_used_assertions_and_retired_client_secrets_are_purged_and_only_those(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(**FAST)
    url = server.database_url
    api = Api(server.url)
    client = api.create_client(client_name="rotates its secret")
    rotated = api.admin("POST", f"/admin/clients/{client['client_id']}/secret", json={"grace_period": 1})
    assert rotated.status_code == 200, rotated.text
    new_secret = {"client_id": client["client_id"], "client_secret": rotated.json()["client_secret"]}
    now = int(time.time())
    for expires_at, tag in ((now - 5, "expired"), (now + 3600, "live")):
        query(
            url,
            "INSERT INTO revoked_jtis (jti, client_id, revoked_at, expires_at) VALUES (:jti, :c, :now, :e)",
            jti=f"jti-{tag}", c=client["client_id"], now=now, e=expires_at,
        )  # fmt: skip
        query(
            url,
            "INSERT INTO used_assertions (client_id, jti, expires_at) VALUES (:c, :jti, :e)",
            c=client["client_id"], jti=f"assertion-{tag}", e=expires_at,
        )  # fmt: skip

    def left() -> tuple[int, int, int]:
        return (
            scalar(url, "SELECT count(*) FROM client_secrets WHERE client_id = :c", c=client["client_id"]),
            scalar(url, "SELECT count(*) FROM revoked_jtis"),
            scalar(url, "SELECT count(*) FROM used_assertions"),
        )

    wait_until(lambda: left() == (1, 1, 1), "the old secret and the expired entries are purged")
    assert query(url, "SELECT jti FROM revoked_jtis") == [("jti-live",)]
    assert query(url, "SELECT jti FROM used_assertions") == [("assertion-live",)]
    assert api.token(new_secret).status_code == 200  # the secret in use has no expiry: never purged
    assert api.token(client).status_code == 401
    assert metric(server.url, "m2m_auth_purged_rows_total", table="client_secrets") == 1
    api.close()


def test_killing_the_server_in_the_middle_of_a_purge_loses_no_live_token(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[str], str], backend: str
) -> None:
    url = database_factory(backend)
    setup = server_factory(url, purge_enabled=False)
    api = Api(setup.url)
    client = api.create_client(client_name="live tokens")
    live = [api.access_token(client) for _ in range(30)]
    api.close()
    setup.stop()
    plant_expired_tokens(url, 50_000)

    # Small batches make the round last seconds; the first purged batch shows it is under way.
    purging = server_factory(url, purge_interval=0.5, purge_batch_size=50)
    wait_until(lambda: metric(purging.url, "m2m_auth_purged_rows_total", table="tokens") > 0, "the purge started")
    assert purging.proc is not None
    purging.proc.kill()
    purging.proc.wait()

    left = scalar(url, "SELECT count(*) FROM tokens WHERE client_id = 'planted'")
    assert 0 < left < 50_000, "the kill landed mid-purge"
    if backend == "sqlite":
        assert query(url, "PRAGMA integrity_check") == [("ok",)]
    after = server_factory(url, purge_interval=0.5, purge_batch_size=100_000)  # one batch finishes it
    api = Api(after.url)
    for token in live:
        assert api.introspect(client, token).json()["active"] is True
    wait_until(lambda: scalar(url, "SELECT count(*) FROM tokens") == 30, "the next server finishes the purge")
    for token in live:
        assert api.introspect(client, token).json()["active"] is True
    api.close()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_two_replicas_on_one_postgresql_only_one_purges_and_the_other_takes_over_when_it_dies(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[str], str]
) -> None:
    url = database_factory("postgres")
    first = server_factory(url, **FAST)
    second = server_factory(url, **FAST)

    def rounds(server: ServerProcess, result: str) -> float:
        return metric(server.url, "m2m_auth_purge_rounds_total", result=result)

    wait_until(lambda: rounds(first, "purged") + rounds(first, "skipped") >= 4, "four rounds on the first")
    wait_until(lambda: rounds(second, "purged") + rounds(second, "skipped") >= 4, "four rounds on the second")
    counts = {name: (rounds(s, "purged"), rounds(s, "skipped")) for name, s in (("first", first), ("second", second))}
    purgers = [name for name, (purged, _) in counts.items() if purged > 0]
    assert len(purgers) == 1, counts
    leader, follower = (first, second) if purgers == ["first"] else (second, first)
    assert rounds(leader, "skipped") == 0, counts
    assert rounds(follower, "purged") == 0, counts

    plant_expired_tokens(url, 500)
    wait_until(lambda: metric(leader.url, "m2m_auth_purged_rows_total", table="tokens") >= 500, "the leader purges")
    assert metric(follower.url, "m2m_auth_purged_rows_total", table="tokens") == 0

    assert leader.proc is not None
    leader.proc.kill()  # its connection closes, and the database releases the lock with it
    leader.proc.wait()
    plant_expired_tokens(url, 500)
    wait_until(lambda: rounds(follower, "purged") > 0, "the other replica takes the purge over")
    wait_until(lambda: scalar(url, "SELECT count(*) FROM tokens") == 0, "and purges")
