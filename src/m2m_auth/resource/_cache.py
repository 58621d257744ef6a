"""A bounded cache with per-entry lifetimes and single-flight loading, keyed by a token's SHA-256 digest."""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["TTLCache", "SingleFlight", "digest"]

V = TypeVar("V")


def digest(token: str) -> bytes:
    """The cache key of a token: its SHA-256, so a dump of the cache holds nothing a caller could replay."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TTLCache(Generic[V]):
    """LRU-bounded mapping whose entries expire at their own time (on the clock given)."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self._max = max_entries
        self._clock = clock
        # key -> (stored_at, expires_at, value)
        self._entries: OrderedDict[bytes, tuple[float, float, V]] = OrderedDict()

    def get(self, key: bytes) -> tuple[bool, V | None]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        stored_at, expires_at, value = entry
        now = self._clock()
        if not stored_at <= now < expires_at:  # expired, or the clock went back: never stretch a lifetime
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def put(self, key: bytes, value: V, lifetime: float) -> None:
        if lifetime <= 0 or self._max == 0:
            self._entries.pop(key, None)
            return
        now = self._clock()
        self._entries[key] = (now, now + lifetime, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)  # least recently used

    def discard(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def keys(self) -> Iterator[bytes]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


class SingleFlight(Generic[V]):
    """Concurrent calls for one key share one load (run as a task, so a cancelled caller cancels no one else)."""

    def __init__(self) -> None:
        self._running: dict[bytes, asyncio.Task[V]] = {}

    async def run(self, key: bytes, load: Callable[[], Awaitable[V]]) -> V:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            self._running[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        return await asyncio.shield(task)

    def _done(self, key: bytes, task: asyncio.Task[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so a load whose callers all left logs no "never retrieved" warning

    def __len__(self) -> int:
        return len(self._running)
