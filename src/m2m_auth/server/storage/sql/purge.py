"""Purge of expired rows: storage stays proportional to what is still alive, with no cron job.

Every opaque token, JWT deny-list entry, used client assertion and rotated-out client secret is a
row with an expiry. Once expired it can change no answer (an expired token is inactive whether its
row exists or not; a revoked one keeps its row until it would have expired), so it is deleted:

- in bounded batches, one short transaction each, oldest first on the expiry index, with a pause
  after each full batch so that issuance and introspection keep their latency (no table lock);
- PostgreSQL: `ctid = ANY(ARRAY(SELECT ctid ... LIMIT n))`, with no row lock taken first (locking
  would write every row once more); a row another transaction changed meanwhile has a new ctid and
  is left for the next round; its commits do not wait for the WAL flush, and vacuum does not
  truncate these tables (migration 0003: truncation locks the table);
  SQLite: `rowid IN (SELECT rowid ... LIMIT n)`;
- by one replica at a time: the first to take a lock keeps it while it lives and purges every round;
  the others skip theirs. PostgreSQL: a session advisory lock on a connection of its own (released by
  the server when the process dies); SQLite: `flock` on a file beside the database (workers of one
  `serve --workers N`).

Killing a purge at any point loses nothing: each batch commits or rolls back on its own, and only
rows already expired at the start of the round are candidates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Column, Table, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import TextClause

from m2m_auth.server.core.clock import Clock, SystemClock
from m2m_auth.server.storage.sql.tables import client_secrets, revoked_jtis, tokens, used_assertions

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: a single process, nothing to exclude
    fcntl = None  # type: ignore[assignment]

__all__ = ["PURGEABLE", "PurgeEvents", "PurgeResult", "Purger", "count_live_tokens"]

log = logging.getLogger("m2m_auth.purge")

# (table, expiry column): rows whose expiry is at or before now are deleted. A NULL expiry (the
# current client secret) never matches `<=`, so it is never purged.
PURGEABLE: tuple[tuple[Table, Column[Any]], ...] = (
    (tokens, tokens.c.expires_at),
    (revoked_jtis, revoked_jtis.c.expires_at),
    (used_assertions, used_assertions.c.expires_at),
    (client_secrets, client_secrets.c.expires_at),
)

_PG_LOCK_ID = 0x6D326D70  # "m2mp"; migrations use "m2ma"
# After each full batch the purge sleeps nine times as long as the batch took: it takes at most a
# tenth of the database's time, and its WAL is spread thin, so issuance commits (which flush the WAL
# written before them) carry little of it. Still 10^4 rows/s or more: far above any issuance rate.
_PAUSE_PER_BUSY = 9.0


class PurgeEvents(Protocol):
    """What a purge reports; the ASGI layer's Metrics implements it."""

    def purge_batch(self, table: str, rows: int) -> None: ...

    def purge_round(self, result: PurgeResult) -> None: ...

    def purge_skipped(self) -> None: ...

    def purge_failed(self) -> None: ...

    def live_tokens(self, count: int) -> None: ...


class _NoEvents:
    def purge_batch(self, table: str, rows: int) -> None:
        pass

    def purge_round(self, result: PurgeResult) -> None:
        pass

    def purge_skipped(self) -> None:
        pass

    def purge_failed(self) -> None:
        pass

    def live_tokens(self, count: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class PurgeResult:
    removed: dict[str, int]
    started_at: float  # epoch seconds
    duration: float  # seconds
    batches: int = 0

    @property
    def total(self) -> int:
        return sum(self.removed.values())


@dataclass(slots=True)
class _Lock:
    """Leadership among replicas: held from the first round that gets it until close()."""

    engine: AsyncEngine
    conn: AsyncConnection | None = None
    fd: int | None = None
    path: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database
            if database and database != ":memory:" and not database.startswith("file:"):
                self.path = f"{database}-purge.lock"

    async def acquire(self) -> bool:
        if self.engine.dialect.name == "postgresql":
            return await self._acquire_pg()
        return self._acquire_file()

    async def _acquire_pg(self) -> bool:
        if self.conn is not None:
            try:  # still ours? a broken connection (database restart) has lost it
                held = await self.conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                        " AND classid = 0 AND objid = :id AND objsubid = 1 AND granted"
                    ),
                    {"id": _PG_LOCK_ID},
                )
                await self.conn.commit()
                if held:
                    return True
            except Exception:  # noqa: BLE001 - any failure means the lock is gone with its connection
                pass
            await self._drop_pg()
        conn = await self.engine.connect()
        try:
            got = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:id)"), {"id": _PG_LOCK_ID}))
            await conn.commit()  # the lock is the session's: no transaction stays open
        except BaseException:
            await conn.invalidate()
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self.conn = conn
        return True

    async def _drop_pg(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        # A connection that held the lock never goes back to the pool. Closing a broken one may fail:
        # it is gone either way.
        with contextlib.suppress(Exception):
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()

    def _acquire_file(self) -> bool:
        if self.path is None or fcntl is None or self.fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    async def release(self) -> None:
        if self.conn is not None:
            try:
                await self.conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
                await self.conn.commit()
            except Exception:  # noqa: BLE001 - the connection is dropped below, which releases it too
                pass
            await self._drop_pg()
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def _batch_delete(engine: AsyncEngine, table: Table, column: Column[Any]) -> TextClause:
    quote = engine.dialect.identifier_preparer
    name, expires = quote.format_table(table), quote.quote(column.name)
    candidates = f"FROM {name} WHERE {expires} <= :now ORDER BY {expires} LIMIT :n"
    if engine.dialect.name == "postgresql":
        sql = f"DELETE FROM {name} WHERE ctid = ANY(ARRAY(SELECT ctid {candidates}))"
    else:
        sql = f"DELETE FROM {name} WHERE rowid IN (SELECT rowid {candidates})"
    return text(sql)


async def count_live_tokens(engine: AsyncEngine, now: int) -> int:
    """Tokens not yet expired (revoked ones included): a range count on the expiry index."""
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).where(tokens.c.expires_at > now)) or 0)


class Purger:
    """Deletes expired rows in batches; `run_round` for the server's loop, `purge` for a one-off run."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        batch_size: int = 1000,
        clock: Clock | None = None,
        events: PurgeEvents | None = None,
        tables: Sequence[tuple[Table, Column[Any]]] = PURGEABLE,
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.clock = clock or SystemClock()
        self.events: PurgeEvents = events or _NoEvents()
        self._statements = [(table.name, _batch_delete(engine, table, column)) for table, column in tables]
        # A purge commit need not wait for its WAL flush, so it never queues issuance's commits behind
        # it: if the database crashes first, the batch's rows come back, still expired, and go next round.
        self._no_flush_wait = (
            text("SET LOCAL synchronous_commit TO OFF") if engine.dialect.name == "postgresql" else None
        )
        self._lock = _Lock(engine)

    async def purge(self) -> PurgeResult:
        """Delete every row that expired before now, whoever else is purging (rows are skipped, not waited on)."""
        now = int(self.clock.now())
        started_at, start = time.time(), time.perf_counter()
        removed: dict[str, int] = {}
        batches = 0
        for name, statement in self._statements:
            removed[name] = 0
            while True:
                began = time.perf_counter()
                async with self.engine.begin() as conn:
                    if self._no_flush_wait is not None:
                        await conn.execute(self._no_flush_wait)
                    deleted = int((await conn.execute(statement, {"now": now, "n": self.batch_size})).rowcount)
                batches += 1
                removed[name] += deleted
                if deleted:
                    self.events.purge_batch(name, deleted)
                if deleted < self.batch_size:
                    break
                await asyncio.sleep((time.perf_counter() - began) * _PAUSE_PER_BUSY)
        result = PurgeResult(removed, started_at, time.perf_counter() - start, batches)
        self.events.purge_round(result)
        return result

    async def run_round(self) -> PurgeResult | None:
        """One round: purge if this replica holds (or takes) the purge lock; None when another one does."""
        if not await self._lock.acquire():
            self.events.purge_skipped()
            return None
        return await self.purge()

    async def refresh_live_tokens(self) -> int:
        count = await count_live_tokens(self.engine, int(self.clock.now()))
        self.events.live_tokens(count)
        return count

    async def run_forever(self, interval: float, *, enabled: bool = True) -> None:
        """The server's background loop: a round, then the live-token gauge, every `interval` seconds.

        A failing database costs a round, never the loop: it is logged (the error's class, never a URL
        or a statement's parameters) and the next round tries again.
        """
        while True:
            if enabled:
                try:
                    result = await self.run_round()
                except Exception as exc:  # noqa: BLE001 - any failure of one round: log, count, try the next
                    self.events.purge_failed()
                    log.warning("purge round failed, retrying in %s s: %s", interval, _describe(exc))
                else:
                    if result is not None and result.total:
                        log.info(
                            "purged %d expired rows (%s) in %.3f s",
                            result.total,
                            ", ".join(f"{name} {n}" for name, n in result.removed.items() if n),
                            result.duration,
                        )
            try:
                await self.refresh_live_tokens()
            except Exception as exc:  # noqa: BLE001 - the gauge keeps its last value
                log.debug("live token count failed: %s", _describe(exc))
            await asyncio.sleep(interval)

    async def close(self) -> None:
        await self._lock.release()


def _describe(exc: BaseException) -> str:
    # Driver messages can quote statements or connection details; the class names say what failed.
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc).__name__} ({type(exc.orig).__name__})"
    return type(exc).__name__
