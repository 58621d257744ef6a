"""Behind a transaction-mode pooler, the session-level features take the direct URL.

PgBouncer in transaction mode hands each transaction any server connection: an advisory lock held
for the process's life and a LISTEN would be lost. Here the direct URL logs in as another role, so
pg_stat_activity shows which connection each feature uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from m2m_auth.server.storage.sql.changes import APPLICATION_NAME

from .._server import Api, ServerProcess
from ..purge._db import query, wait_until

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

_PURGE_LOCK = 0x6D326D70


def test_the_purge_lock_and_the_change_listener_use_the_direct_url_and_requests_the_main_one(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[str], str]
) -> None:
    url = database_factory("postgres")
    role = f"direct_{uuid.uuid4().hex[:12]}"
    query(url, f"CREATE ROLE {role} LOGIN SUPERUSER")
    server = server_factory(url, database_direct_url=url.replace("postgres@", f"{role}@", 1), purge_interval=0.5)
    api = Api(server.url)
    client = api.create_client(client_name="through the pooler")
    assert api.introspect(client, api.access_token(client)).json()["active"] is True

    def users(sql: str) -> set[str]:
        return {row[0] for row in query(url, sql)}

    listener = (
        f"SELECT usename FROM pg_stat_activity WHERE application_name = '{APPLICATION_NAME}'"
        " AND datname = current_database()"
    )
    purge_lock = (
        "SELECT a.usename FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        f" WHERE l.locktype = 'advisory' AND l.objid = {_PURGE_LOCK} AND l.granted"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    wait_until(lambda: users(listener) == {role}, "the listener connected as the direct URL's role")
    wait_until(lambda: users(purge_lock) == {role}, "the purge lock held on the direct URL")
    others = (
        "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert users(others) == {role, "postgres"}, "token requests use the main URL's pool"
