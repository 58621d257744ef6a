"""Per-process client cache in front of the client store, invalidated by the admin service."""

from __future__ import annotations

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

    async def get(self, client_id: str, *, fresh: bool = False) -> Client | None:
        if not is_client_id(client_id):
            return None  # cannot exist, and need not reach the database (PostgreSQL text refuses NUL)
        now = self._clock.now()
        if not fresh:
            hit = self._cache.get(client_id)
            if hit is not None and now - hit[0] < self._ttl:
                return hit[1]
        client = await self._store.get_client(client_id)
        if client is None:
            self._cache.pop(client_id, None)  # unknown ids are not cached: they cannot fill memory
            return None
        if len(self._cache) >= _MAX_ENTRIES:
            self._cache.clear()
        self._cache[client_id] = (now, client)
        return client

    def age(self, client_id: str) -> float:
        hit = self._cache.get(client_id)
        return float("inf") if hit is None else self._clock.now() - hit[0]

    def invalidate(self, client_id: str | None = None) -> None:
        if client_id is None:
            self._cache.clear()
        else:
            self._cache.pop(client_id, None)
