"""Active tokens seen recently, so that introspecting the same token again reads no database.

A resource server introspects the same token on every call it receives, and a token changes
only when it is revoked. Each process keeps the records of active tokens it looked up, keyed by
the token's SHA-256, and forgets one when a revocation is announced: by this process at once,
by another replica through the database's notifications (storage.sql.changes).

The cache answers only while `live()` says every change reaches this process (the notification
connection is up); otherwise each lookup goes to the database as if there were no cache. When
the connection comes back, everything cached before is dropped: what it missed is unknown.
A lookup that started before a revocation was heard never fills the cache (`generation`).
"""

from __future__ import annotations

from collections.abc import Callable

from m2m_auth.server.core.clock import Clock
from m2m_auth.server.core.models import TokenRecord

__all__ = ["IntrospectionCache"]


def _never() -> bool:
    return False


class IntrospectionCache:
    def __init__(self, clock: Clock, *, max_entries: int, ttl: float, live: Callable[[], bool] = _never) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._ttl = ttl
        self.live = live
        self._entries: dict[bytes, tuple[float, TokenRecord]] = {}
        self.generation = 0  # bumped by every forget: a lookup that started before must not fill the cache
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self._max_entries > 0 and self.live()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> TokenRecord | None:
        entry = self._entries.get(key)
        if entry is not None:
            if self._clock.now() - entry[0] < self._ttl:
                self.hits += 1
                return entry[1]
            del self._entries[key]
        self.misses += 1
        return None

    def put(self, key: bytes, record: TokenRecord, generation: int) -> None:
        """Keep an active record looked up when the cache was at `generation`, unless a change came since."""
        if generation != self.generation or record.revoked_at is not None or not self.enabled:
            return
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest entry: dicts keep insertion order
        self._entries[key] = (self._clock.now(), record)

    def forget(self, key: bytes) -> None:
        self.generation += 1
        self._entries.pop(key, None)

    def forget_client(self, client_id: str) -> None:
        """A client's tokens were revoked together, or the client changed: drop every one of its tokens."""
        self.generation += 1
        for key in [k for k, (_, record) in self._entries.items() if record.client_id == client_id]:
            del self._entries[key]

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
