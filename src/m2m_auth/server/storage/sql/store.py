"""SqlStorage: every storage protocol on SQLAlchemy Core; dialect differences kept in small helpers."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import orjson
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from m2m_auth.server.core.models import Client, ClientSecret, StoredKey, TokenRecord
from m2m_auth.server.storage.base import StorageUnavailable
from m2m_auth.server.storage.sql.batch import Batcher
from m2m_auth.server.storage.sql.changes import KEYS, ChangeListener, Echo, announce, client_topic, token_topic
from m2m_auth.server.storage.sql.engine import create_engine
from m2m_auth.server.storage.sql.tables import (
    client_secrets,
    clients,
    revoked_jtis,
    server_state,
    signing_keys,
    tokens,
    used_assertions,
)

__all__ = ["SqlStorage"]

log = logging.getLogger("m2m_auth.storage")

P = ParamSpec("P")
T = TypeVar("T")

_OUTAGE = (OperationalError, InterfaceError, PoolTimeout, OSError, asyncio.TimeoutError, ConnectionError)


def _unavailable_on_outage(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except IntegrityError:
            raise
        except _OUTAGE as exc:
            raise StorageUnavailable(f"{fn.__name__}: {type(exc).__name__}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated or _is_outage(exc):
                raise StorageUnavailable(f"{fn.__name__}: {type(exc.orig).__name__}") from exc
            raise

    return wrapper


def _is_outage(exc: DBAPIError) -> bool:
    # asyncpg's errors for a server that shut down or a connection that broke mid-statement
    name = type(exc.orig).__name__
    return any(word in name for word in ("Connection", "CannotConnect", "AdminShutdown", "CrashShutdown", "Shutdown"))


# PostgreSQL's hot statements: driver SQL in autocommit, so one round trip each (no BEGIN, no ROLLBACK;
# a single INSERT is its own transaction, committed before it returns), and one prepared statement
# whatever the batch size (arrays instead of an IN list that grows with it).
_PG_INSERT_TOKENS = (
    "INSERT INTO tokens (digest, client_id, scope, audience, issued_at, expires_at) "
    "SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::json[], $5::int8[], $6::int8[])"
)
_PG_SELECT_TOKENS = (
    "SELECT digest, client_id, scope, audience, issued_at, expires_at, revoked_at FROM tokens "
    "WHERE digest = ANY($1::bytea[])"
)
_PG_SELECT_REVOCATIONS = "SELECT jti, revoked_at FROM revoked_jtis WHERE jti = ANY($1::text[])"


class SqlStorage:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        pg = engine.dialect.name == "postgresql"
        self._pg = engine.execution_options(isolation_level="AUTOCOMMIT") if pg else None
        self._token_writes: Batcher[TokenRecord, None] = Batcher(self._insert_tokens)
        self._token_reads: Batcher[bytes, TokenRecord | None] = Batcher(self._select_tokens)
        self._jti_reads: Batcher[tuple[str, str, int], int | None] = Batcher(self._select_revocations)
        # Set once this process listens for changes: a revocation or a client change then answers only after
        # its notification came back (storage.sql.changes.Echo), so the other replicas' caches have it too.
        self.listener: ChangeListener | None = None

    def _echo(self, topic: str) -> Echo:
        return Echo(self.listener, topic)

    @classmethod
    def from_url(cls, url: str, **engine_options: Any) -> SqlStorage:
        return cls(create_engine(url, **engine_options))

    async def close(self) -> None:
        await self._token_writes.drain()
        await self.engine.dispose()

    @_unavailable_on_outage
    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # --- clients ---------------------------------------------------------------------------

    @_unavailable_on_outage
    async def get_client(self, client_id: str) -> Client | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(clients).where(clients.c.client_id == client_id))).first()
            if row is None:
                return None
            secret_rows = (
                await conn.execute(
                    select(client_secrets).where(client_secrets.c.client_id == client_id).order_by(client_secrets.c.id)
                )
            ).all()
        return _client(row, secret_rows)

    @_unavailable_on_outage
    async def list_clients(self) -> list[Client]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(clients).order_by(clients.c.created_at, clients.c.client_id))).all()
        return [_client(row, ()) for row in rows]

    @_unavailable_on_outage
    async def create_client(self, client: Client) -> bool:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(clients).values(**_client_values(client)))
                for secret in client.secrets:
                    await conn.execute(
                        insert(client_secrets).values(
                            client_id=client.client_id,
                            digest=secret.digest,
                            created_at=secret.created_at,
                            expires_at=secret.expires_at,
                        )
                    )
        except IntegrityError:
            return False
        return True

    @_unavailable_on_outage
    async def update_client(self, client_id: str, changes: dict[str, Any], now: int) -> Client | None:
        values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in changes.items()}
        if "scope" in values:
            values["scope"] = " ".join(values["scope"])
        async with self._echo(client_topic(client_id)) as echo:
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    update(clients).where(clients.c.client_id == client_id).values(**values, updated_at=now)
                )
                if result.rowcount == 0:
                    return None
                if changes.get("disabled"):
                    await _revoke_all(conn, client_id, now)
                await announce(conn, client_topic(client_id))
            echo.announced = True
        return await self.get_client(client_id)

    @_unavailable_on_outage
    async def delete_client(self, client_id: str, now: int) -> bool:
        async with self._echo(client_topic(client_id)) as echo:
            async with self.engine.begin() as conn:
                await conn.execute(delete(tokens).where(tokens.c.client_id == client_id))
                await conn.execute(delete(client_secrets).where(client_secrets.c.client_id == client_id))
                result = await conn.execute(delete(clients).where(clients.c.client_id == client_id))
                if result.rowcount:
                    await _deny_client_jwts(conn, client_id, now)
                    await announce(conn, client_topic(client_id))
            echo.announced = bool(result.rowcount)
        return echo.announced

    @_unavailable_on_outage
    async def add_secret(self, client_id: str, digest: bytes, now: int, previous_expire_at: int) -> bool:
        async with self._echo(client_topic(client_id)) as echo:
            async with self.engine.begin() as conn:
                exists = (
                    await conn.execute(select(clients.c.client_id).where(clients.c.client_id == client_id))
                ).first()
                if exists is None:
                    return False
                live = client_secrets.c.client_id == client_id
                await conn.execute(
                    update(client_secrets)
                    .where(
                        live,
                        (client_secrets.c.expires_at.is_(None)) | (client_secrets.c.expires_at > previous_expire_at),
                    )
                    .values(expires_at=previous_expire_at)
                )
                await conn.execute(
                    insert(client_secrets).values(client_id=client_id, digest=digest, created_at=now, expires_at=None)
                )
                await conn.execute(update(clients).where(clients.c.client_id == client_id).values(updated_at=now))
                await announce(conn, client_topic(client_id))
            echo.announced = True
        return True

    # --- tokens ----------------------------------------------------------------------------

    async def save_token(self, record: TokenRecord) -> None:
        """Group commit: concurrent issuances share one transaction; each caller resumes after it."""
        await self._token_writes.submit(record)

    @_unavailable_on_outage
    async def _insert_tokens(self, records: list[TokenRecord]) -> list[None]:
        if self._pg is not None:
            columns = (
                [r.digest for r in records],
                [r.client_id for r in records],
                [" ".join(r.scope) for r in records],
                [orjson.dumps(r.audience).decode() for r in records],
                [r.issued_at for r in records],
                [r.expires_at for r in records],
            )
            async with self._pg.connect() as conn:
                await conn.exec_driver_sql(_PG_INSERT_TOKENS, columns)
            return [None] * len(records)
        rows = [
            {
                "digest": r.digest,
                "client_id": r.client_id,
                "scope": " ".join(r.scope),
                "audience": list(r.audience),
                "issued_at": r.issued_at,
                "expires_at": r.expires_at,
                "revoked_at": None,
            }
            for r in records
        ]
        async with self.engine.begin() as conn:
            await conn.execute(insert(tokens), rows)
        return [None] * len(records)

    async def find_token(self, digest: bytes) -> TokenRecord | None:
        """Concurrent lookups share one query (`digest = ANY(...)` on PostgreSQL, `IN (...)` on SQLite)."""
        return await self._token_reads.submit(digest)

    @_unavailable_on_outage
    async def _select_tokens(self, digests: list[bytes]) -> list[TokenRecord | None]:
        if self._pg is not None:
            async with self._pg.connect() as conn:
                rows = (await conn.exec_driver_sql(_PG_SELECT_TOKENS, (list(set(digests)),))).all()
        else:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(select(tokens).where(tokens.c.digest.in_(set(digests))))).all()
        found = {
            bytes(row.digest): TokenRecord(
                digest=bytes(row.digest),
                client_id=row.client_id,
                scope=tuple(row.scope.split()),
                audience=tuple(orjson.loads(row.audience) if isinstance(row.audience, str) else row.audience),
                issued_at=row.issued_at,
                expires_at=row.expires_at,
                revoked_at=row.revoked_at,
            )
            for row in rows
        }
        return [found.get(digest) for digest in digests]

    @_unavailable_on_outage
    async def revoke_token(self, digest: bytes, client_id: str | None, now: int) -> bool:
        condition = (tokens.c.digest == digest) & tokens.c.revoked_at.is_(None)
        if client_id is not None:
            condition &= tokens.c.client_id == client_id
        topic = token_topic(digest)
        async with self._echo(topic) as echo:
            async with self.engine.begin() as conn:
                result = await conn.execute(update(tokens).where(condition).values(revoked_at=now))
                if result.rowcount:
                    await announce(conn, topic)
            echo.announced = bool(result.rowcount)
        return echo.announced

    @_unavailable_on_outage
    async def revoke_tokens_for_client(self, client_id: str, now: int) -> int:
        async with self._echo(client_topic(client_id)) as echo:
            async with self.engine.begin() as conn:
                revoked = await _revoke_all(conn, client_id, now)
            echo.announced = True
        return revoked

    # --- JWT state: deny list, used assertions, signing keys --------------------------------

    @_unavailable_on_outage
    async def revoke_jti(self, jti: str, client_id: str, now: int, expires_at: int, token_digest: bytes) -> bool:
        topic = token_topic(token_digest)
        try:
            async with self._echo(topic) as echo:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        insert(revoked_jtis).values(jti=jti, client_id=client_id, revoked_at=now, expires_at=expires_at)
                    )
                    await announce(conn, topic)
                echo.announced = True
        except IntegrityError:
            return False
        return True

    async def revoked_at(self, jti: str, client_id: str, issued_at: int) -> int | None:
        """Concurrent deny-list checks share one query, like token lookups."""
        return await self._jti_reads.submit((jti, client_id, issued_at))

    @_unavailable_on_outage
    async def _select_revocations(self, queries: list[tuple[str, str, int]]) -> list[int | None]:
        names = {jti for jti, _, _ in queries} | {_client_mark(client_id) for _, client_id, _ in queries}
        rows: Sequence[Any]
        if self._pg is not None:
            async with self._pg.connect() as conn:
                rows = (await conn.exec_driver_sql(_PG_SELECT_REVOCATIONS, (list(names),))).all()
        else:
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(revoked_jtis.c.jti, revoked_jtis.c.revoked_at).where(revoked_jtis.c.jti.in_(names))
                    )
                ).all()
        found = {row.jti: int(row.revoked_at) for row in rows}
        results: list[int | None] = []
        for jti, client_id, issued_at in queries:
            mark = found.get(_client_mark(client_id))
            results.append(found.get(jti) or (mark if mark is not None and issued_at <= mark else None))
        return results

    @_unavailable_on_outage
    async def use_assertion(self, client_id: str, jti: str, expires_at: int) -> bool:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(used_assertions).values(client_id=client_id, jti=jti, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    @_unavailable_on_outage
    async def list_keys(self) -> list[StoredKey]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(signing_keys).order_by(signing_keys.c.generation))).all()
        return [
            StoredKey(
                kid=row.kid,
                generation=row.generation,
                alg=row.alg,
                public_jwk=dict(row.public_jwk),
                private_jwk=bytes(row.private_jwk),
                encryption=row.encryption,
                created_at=row.created_at,
                activates_at=row.activates_at,
            )
            for row in rows
        ]

    @_unavailable_on_outage
    async def reseal_key(self, kid: str, private_jwk: bytes, encryption: str, *, expected: bytes) -> bool:
        # Compare-and-set: of replicas resealing at once, one rewrites the key and the others change nothing.
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(signing_keys)
                .where(signing_keys.c.kid == kid, signing_keys.c.private_jwk == expected)
                .values(private_jwk=private_jwk, encryption=encryption)
            )
        return bool(result.rowcount)

    @_unavailable_on_outage
    async def add_key(self, key: StoredKey) -> bool:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(signing_keys).values(
                        kid=key.kid,
                        generation=key.generation,
                        alg=key.alg,
                        public_jwk=key.public_jwk,
                        private_jwk=key.private_jwk,
                        encryption=key.encryption,
                        created_at=key.created_at,
                        activates_at=key.activates_at,
                    )
                )
                await announce(conn, KEYS)
        except IntegrityError:
            return False
        return True

    # --- server state ------------------------------------------------------------------------

    @_unavailable_on_outage
    async def get_state(self, key: str) -> str | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(server_state.c.value).where(server_state.c.key == key))).first()
        return None if row is None else str(row.value)

    @_unavailable_on_outage
    async def put_state_if_absent(self, key: str, value: str) -> bool:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(server_state).values(key=key, value=value))
        except IntegrityError:
            return False
        return True

    @_unavailable_on_outage
    async def put_state(self, key: str, value: str) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(update(server_state).where(server_state.c.key == key).values(value=value))
            if result.rowcount == 0:
                await conn.execute(insert(server_state).values(key=key, value=value))


async def _deny_client_jwts(conn: AsyncConnection, client_id: str, now: int) -> None:
    mark = _client_mark(client_id)
    await conn.execute(delete(revoked_jtis).where(revoked_jtis.c.jti == mark))
    # Kept a year: longer than any token can live (the maximum TTL is bounded by that), then purged.
    await conn.execute(
        insert(revoked_jtis).values(jti=mark, client_id=client_id, revoked_at=now, expires_at=now + 366 * 86400)
    )


def _client_mark(client_id: str) -> str:
    """The deny-list entry that revokes every JWT of a client issued up to its time (no jti has a colon)."""
    return f"client:{client_id}"


async def _revoke_all(conn: AsyncConnection, client_id: str, now: int) -> int:
    """Stored tokens get their revocation time; JWTs, which are not stored, get a deny-list entry for the client.

    The client row keeps the time too, so the token endpoint does not issue tokens born revoked.
    """
    await conn.execute(update(clients).where(clients.c.client_id == client_id).values(tokens_revoked_at=now))
    await _deny_client_jwts(conn, client_id, now)
    await announce(conn, client_topic(client_id))
    result = await conn.execute(
        update(tokens)
        .where(tokens.c.client_id == client_id, tokens.c.revoked_at.is_(None), tokens.c.expires_at > now)
        .values(revoked_at=now)
    )
    return int(result.rowcount)


def _client_values(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "client_name": client.client_name,
        "scope": " ".join(client.scope),
        "audience": list(client.audience),
        "grant_types": list(client.grant_types),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "access_token_format": client.access_token_format,
        "access_token_ttl": client.access_token_ttl,
        "metadata": client.metadata,
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "disabled": client.disabled,
        "created_at": client.created_at,
        "updated_at": client.updated_at,
    }


def _client(row: Row[Any], secret_rows: Any) -> Client:
    return Client(
        client_id=row.client_id,
        client_name=row.client_name,
        scope=tuple(row.scope.split()),
        audience=tuple(row.audience),
        grant_types=tuple(row.grant_types),
        token_endpoint_auth_method=row.token_endpoint_auth_method,
        access_token_format=row.access_token_format,
        access_token_ttl=row.access_token_ttl,
        metadata=dict(row._mapping["metadata"]),
        disabled=bool(row.disabled),
        tokens_revoked_at=row.tokens_revoked_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        jwks=row.jwks,
        jwks_uri=row.jwks_uri,
        secrets=tuple(ClientSecret(bytes(s.digest), s.created_at, s.expires_at) for s in secret_rows),
    )
