"""Per-process client cache in front of the client store, invalidated by the admin service."""

from __future__ import annotations

import asyncio

from m2m_auth.server.core.clock import Clock
from m2m_auth.server.core.models import Client, is_client_id
from m2m_auth.server.storage.base import ClientStore

__all__ = ["ClientRegistry"]

_MAX_ENTRIES = 10_000


class ClientRegistry:
    """Clients are read on every token and introspection request; they change rarely.

    Changes made through this process invalidate at once; changes made by another replica arrive
    as notifications (storage.sql.changes, PostgreSQL) and otherwise after `ttl` seconds at most
    (a secret unknown to the cache is re-read at once: see `get(fresh=True)`).
    """

    def __init__(self, store: ClientStore, clock: Clock, ttl: float) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Client]] = {}
        # Single flight: when an entry expires under load, one read per client id, not one per request
        # (every in-flight request missing at once exhausted the connection pool: a p99 of 30-90 ms).
        self._reads: dict[str, asyncio.Future[Client | None]] = {}
        self._generation = 0  # bumped by invalidate(): a read that started before must not be cached

    async def get(self, client_id: str, *, fresh: bool = False) -> Client | None:
        if not is_client_id(client_id):
            return None  # cannot exist, and need not reach the database (PostgreSQL text refuses NUL)
        if not fresh:
            hit = self._cache.get(client_id)
            if hit is not None and self._clock.now() - hit[0] < self._ttl:
                return hit[1]
            pending = self._reads.get(client_id)
            if pending is None:
                pending = self._reads[client_id] = asyncio.ensure_future(self._read(client_id))
                pending.add_done_callback(lambda done: self._forget(client_id, done))
            # Shielded: a caller that goes away does not cancel the read the others wait for.
            return await asyncio.shield(pending)
        return await self._read(client_id)

    def _forget(self, client_id: str, read: asyncio.Future[Client | None]) -> None:
        if self._reads.get(client_id) is read:
            del self._reads[client_id]

    async def _read(self, client_id: str) -> Client | None:
        now, generation = self._clock.now(), self._generation
        client = await self._store.get_client(client_id)
        if client is None:
            self._cache.pop(client_id, None)  # unknown ids are not cached: they cannot fill memory
            return None
        if generation == self._generation:
            if len(self._cache) >= _MAX_ENTRIES:
                self._cache.clear()
            self._cache[client_id] = (now, client)
        return client

    def age(self, client_id: str) -> float:
        hit = self._cache.get(client_id)
        return float("inf") if hit is None else self._clock.now() - hit[0]

    def invalidate(self, client_id: str | None = None) -> None:
        # Reads already under way may have seen the old row: later callers start a new one.
        self._generation += 1
        if client_id is None:
            self._cache.clear()
            self._reads.clear()
        else:
            self._cache.pop(client_id, None)
            self._reads.pop(client_id, None)
