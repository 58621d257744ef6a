"""Change notifications between replicas: PostgreSQL LISTEN/NOTIFY carries cache invalidations.

Every replica caches clients, signing keys and active tokens. A change committed by one replica (a
client disabled, a secret rotated, a key added, a token revoked) is announced in the same transaction
with `pg_notify`,
so PostgreSQL delivers it to every listener when, and only if, the transaction commits. Each
replica listens on a connection of its own and drops the matching cache entry: a change takes
effect everywhere within the notification's delivery time instead of a cache TTL.

A listener that loses its connection cannot know what it missed: on every (re)connection it
reports the "*" topic (drop everything). While it is disconnected, the caches' TTL bounds how
stale they can be, as on SQLite, which has no notifications (one process, or `--workers` on one
file: each worker falls back to the TTL). The token cache has no such fallback: it is used only
while the listener is connected.

A change (a revocation, a client disabled) is answered only once this process's own listener heard
its notification (`Echo`): PostgreSQL sent it to every listener at the same commit, so by then the
other replicas have it too, give or take their event loop's next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "ALL",
    "APPLICATION_NAME",
    "CHANNEL",
    "CLIENT_PREFIX",
    "KEYS",
    "TOKEN_PREFIX",
    "ChangeEvents",
    "ChangeListener",
    "Echo",
    "announce",
    "client_topic",
    "token_topic",
]

log = logging.getLogger("m2m_auth.storage")

CHANNEL = "m2m_auth_changes"
ALL = "*"
KEYS = "keys"
APPLICATION_NAME = "m2m-auth change listener"
CLIENT_PREFIX = "client:"
TOKEN_PREFIX = "token:"
ECHO_TIMEOUT = 1.0  # seconds a revocation waits at most for its own notification


def client_topic(client_id: str) -> str:
    return CLIENT_PREFIX + client_id


def token_topic(digest: bytes) -> str:
    return TOKEN_PREFIX + digest.hex()


async def announce(conn: AsyncConnection, topic: str) -> None:
    """Queue a notification in the caller's transaction: delivered at its commit, dropped on rollback."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_notify(:channel, :topic)"), {"channel": CHANNEL, "topic": topic})


class ChangeEvents(Protocol):
    def change_feed_connected(self, connected: bool) -> None: ...

    def change_received(self) -> None: ...


class _NoEvents:
    def change_feed_connected(self, connected: bool) -> None:
        pass

    def change_received(self) -> None:
        pass


class ChangeListener:
    """Listens for changes on a dedicated connection, reconnecting for as long as it runs."""

    def __init__(
        self,
        engine: AsyncEngine,
        on_change: Callable[[str], None],
        *,
        events: ChangeEvents | None = None,
        check_interval: float = 5.0,
        retry_interval: float = 1.0,
    ) -> None:
        self._engine = engine
        self._on_change = on_change
        self._events: ChangeEvents = events or _NoEvents()
        self._check_interval = check_interval
        self._retry_interval = retry_interval
        self.connected = asyncio.Event()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    @property
    def supported(self) -> bool:
        return self._engine.dialect.name == "postgresql"

    async def run_forever(self) -> None:
        if not self.supported:
            return
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: the caches fall back to their TTL, retry
                log.warning("change notifications interrupted, reconnecting: %s", type(exc).__name__)
            self.connected.clear()
            self._release_all()
            self._events.change_feed_connected(False)
            await asyncio.sleep(self._retry_interval)

    async def _listen(self) -> None:
        conn = await self._engine.connect()
        try:
            raw: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's Connection
            await raw.execute(f"SET application_name = '{APPLICATION_NAME}'")  # for operators' pg_stat_activity
            lost = asyncio.Event()
            raw.add_termination_listener(lambda _conn: lost.set())
            await raw.add_listener(CHANNEL, self._received)
            # Whatever changed before this point was not heard: drop every cached entry once.
            self._on_change(ALL)
            self.connected.set()
            self._events.change_feed_connected(True)
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._check_interval)
                if not lost.is_set():
                    # A connection can die silently (a partition, a proxy): ask it something now and then.
                    await asyncio.wait_for(raw.fetchval("SELECT 1"), self._check_interval)
            raise ConnectionError("listener connection closed")
        finally:
            # A connection with a listener never goes back to the pool; closing a broken one may fail.
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    def _received(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._events.change_received()
        try:
            self._on_change(payload)
        except Exception:  # a consumer's bug must not stop the listener
            log.exception("change notification handler failed")
        for waiter in self._waiters.pop(payload, ()):
            if not waiter.done():
                waiter.set_result(None)

    def echo(self, topic: str) -> Echo:
        """Around a transaction that announces `topic`: leaves only once the notification came back here."""
        return Echo(self, topic)

    def _expect(self, topic: str) -> asyncio.Future[None] | None:
        if not self.connected.is_set():
            return None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(topic, []).append(waiter)
        return waiter

    def _forget(self, topic: str, waiter: asyncio.Future[None]) -> None:
        waiting = self._waiters.get(topic)
        if waiting is not None and waiter in waiting:
            waiting.remove(waiter)
            if not waiting:
                del self._waiters[topic]

    def _release_all(self) -> None:
        # Disconnected: what was announced may never come back; nobody waits for it.
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._waiters.clear()


class Echo:
    """Registered before the commit (the notification may come back before the commit's own answer).

    The caller sets `announced` once its transaction committed with the announcement in it; leaving
    then waits for the notification, at most ECHO_TIMEOUT (the change is committed: a slow listener
    delays the answer, never loses it). Without a listener, or on an error, it waits for nothing.
    """

    def __init__(self, listener: ChangeListener | None, topic: str) -> None:
        self._listener = listener
        self._topic = topic
        self._waiter: asyncio.Future[None] | None = None
        self.announced = False

    async def __aenter__(self) -> Echo:
        if self._listener is not None:
            self._waiter = self._listener._expect(self._topic)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._listener is None or self._waiter is None:
            return
        try:
            if self.announced and exc_info[0] is None:
                await asyncio.wait_for(asyncio.shield(self._waiter), ECHO_TIMEOUT)
        except TimeoutError:
            log.warning("a change notification did not come back within %.1f s", ECHO_TIMEOUT)
        finally:
            self._listener._forget(self._topic, self._waiter)
