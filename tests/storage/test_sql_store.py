"""The SQL storage on both dialects: migrations, group commit, atomic task-shaped methods."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event

from m2m_auth.server import secrets
from m2m_auth.server.core.models import Client, ClientSecret, TokenRecord
from m2m_auth.server.storage import migrate
from m2m_auth.server.storage.sql.store import SqlStorage
from m2m_auth.server.storage.sql.tables import metadata


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _migrated(url: str) -> SqlStorage:
    storage = SqlStorage.from_url(url)
    await migrate.upgrade(storage.engine)
    return storage


def _token(client_id: str, *, expires_at: int = 2_000_000_000) -> TokenRecord:
    return TokenRecord(
        digest=secrets.digest(os.urandom(16).hex()),
        client_id=client_id,
        scope=("read",),
        audience=("svc",),
        issued_at=1_000,
        expires_at=expires_at,
    )


def test_migrations_create_exactly_the_declared_schema_and_go_down_and_up_again(
    backend: str, database_factory: Callable[[str], str]
) -> None:
    async def scenario() -> None:
        storage = await _migrated(database_factory(backend))
        engine = storage.engine
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        assert diff == []
        assert await migrate.current_revision(engine) == migrate.head_revision()
        await migrate.downgrade(engine, "base")
        assert await migrate.current_revision(engine) is None
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
        await storage.close()

    run(scenario())


def test_concurrent_issuances_share_commits_and_every_token_is_stored(
    backend: str, database_factory: Callable[[str], str]
) -> None:
    async def scenario() -> tuple[int, int]:
        storage = await _migrated(database_factory(backend))
        commits = 0

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            # Each INSERT into tokens is one transaction: inside BEGIN/COMMIT on SQLite, a single
            # autocommit statement on PostgreSQL.
            nonlocal commits
            commits += statement.lstrip().upper().startswith("INSERT INTO TOKENS")

        event.listen(storage.engine.sync_engine, "before_cursor_execute", count)
        records = [_token("c1") for _ in range(200)]
        await asyncio.gather(*(storage.save_token(r) for r in records))
        found = await asyncio.gather(*(storage.find_token(r.digest) for r in records))
        await storage.close()
        assert all(f is not None and f.client_id == "c1" for f in found)
        return commits, len(records)

    commits, issued = run(scenario())
    assert 1 <= commits < issued / 4


def test_revocation_by_a_client_touches_only_its_own_tokens(
    backend: str, database_factory: Callable[[str], str]
) -> None:
    async def scenario() -> None:
        storage = await _migrated(database_factory(backend))
        mine, theirs = _token("a"), _token("b")
        await storage.save_token(mine)
        await storage.save_token(theirs)
        assert await storage.revoke_token(theirs.digest, "a", 5_000) is False
        assert await storage.revoke_token(mine.digest, "a", 5_000) is True
        assert (await storage.find_token(mine.digest)).revoked_at == 5_000  # type: ignore[union-attr]
        assert (await storage.find_token(theirs.digest)).revoked_at is None  # type: ignore[union-attr]
        await storage.close()

    run(scenario())


def test_disabling_a_client_revokes_its_live_tokens_in_the_same_change(
    backend: str, database_factory: Callable[[str], str]
) -> None:
    async def scenario() -> None:
        storage = await _migrated(database_factory(backend))
        client = Client("svc", "svc", secrets=(ClientSecret(b"x" * 32, 0),), created_at=1, updated_at=1)
        assert await storage.create_client(client) is True
        assert await storage.create_client(client) is False  # the id is taken
        live, expired = _token("svc"), _token("svc", expires_at=10)
        await storage.save_token(live)
        await storage.save_token(expired)
        updated = await storage.update_client("svc", {"disabled": True}, now=100)
        assert updated is not None and updated.disabled
        assert (await storage.find_token(live.digest)).revoked_at == 100  # type: ignore[union-attr]
        assert (await storage.find_token(expired.digest)).revoked_at is None  # type: ignore[union-attr]
        assert await storage.delete_client("svc", now=200) is True
        assert await storage.find_token(live.digest) is None
        assert await storage.get_client("svc") is None
        await storage.close()

    run(scenario())


def test_a_new_secret_cuts_the_old_ones_short_but_never_extends_them(
    backend: str, database_factory: Callable[[str], str]
) -> None:
    async def scenario() -> None:
        storage = await _migrated(database_factory(backend))
        await storage.create_client(Client("svc", "svc", secrets=(ClientSecret(b"1" * 32, 0),)))
        assert await storage.add_secret("svc", b"2" * 32, now=10, previous_expire_at=100)
        assert await storage.add_secret("svc", b"3" * 32, now=20, previous_expire_at=500)
        client = await storage.get_client("svc")
        assert client is not None
        assert [(s.digest[:1], s.expires_at) for s in client.secrets] == [(b"1", 100), (b"2", 500), (b"3", None)]
        assert await storage.add_secret("nobody", b"4" * 32, now=20, previous_expire_at=20) is False
        await storage.close()

    run(scenario())


def test_state_is_inserted_once_so_the_first_replica_to_store_the_admin_digest_wins(
    backend: str, database_factory: Callable[[str], str]
) -> None:
    async def scenario() -> None:
        storage = await _migrated(database_factory(backend))
        results = await asyncio.gather(*(storage.put_state_if_absent("k", str(i)) for i in range(5)))
        assert results.count(True) == 1
        assert await storage.get_state("k") == str(results.index(True))
        await storage.close()

    run(scenario())
