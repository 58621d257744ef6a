"""Token cache keyed by (scope, audience), with early refresh and single-flight refresh per key.

The key holds every request parameter that changes the token (scope and audience), so a token
minted for one audience is never handed to a call for another (Duende's advisory, PITFALLS.md).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from m2m_auth.client.token_client import Token

__all__ = ["CacheKey", "cache_key", "early_refresh", "TokenCache", "SyncSingleFlight", "AsyncSingleFlight"]

CacheKey = tuple[str | None, str | None]
T = TypeVar("T")

EARLY_REFRESH_MAX = 30.0  # seconds
EARLY_REFRESH_FRACTION = 0.1  # of the lifetime: a 10 s token is refreshed 1 s ahead, not 30 s (or 60 s, Authlib's)


def cache_key(scope: str | Iterable[str] | None, audience: str | None) -> CacheKey:
    """(scope as a sorted, de-duplicated, space-joined string or None, audience or None)."""
    tokens = scope.split(" ") if isinstance(scope, str) else list(scope or ())
    normalized = " ".join(sorted({t for t in tokens if t}))
    return (normalized or None, audience or None)


def early_refresh(lifetime: float) -> float:
    """Seconds before expiry at which a token is replaced: min(30 s, 10 % of its lifetime)."""
    return max(0.0, min(EARLY_REFRESH_MAX, EARLY_REFRESH_FRACTION * lifetime))


@dataclass
class _Entry:
    token: Token
    refresh_at: float


class TokenCache:
    """Tokens by cache key. Thread-safe; the single-flight classes below keep refreshes to one per key."""

    def __init__(self) -> None:
        self._entries: dict[CacheKey, _Entry] = {}
        self._lock = threading.Lock()  # held only for dict operations, never across I/O

    def fresh(self, key: CacheKey, now: float) -> Token | None:
        """The cached token if it need not be refreshed yet."""
        entry = self._entries.get(key)
        return entry.token if entry is not None and now < entry.refresh_at else None

    def valid(self, key: CacheKey, now: float) -> Token | None:
        """The cached token if it has not expired (it may be due for refresh)."""
        entry = self._entries.get(key)
        return entry.token if entry is not None and now < entry.token.expires_at else None

    def put(self, key: CacheKey, token: Token, now: float) -> None:
        lifetime = token.expires_at - now
        with self._lock:
            self._entries[key] = _Entry(token, token.expires_at - early_refresh(lifetime))

    def defer_refresh(self, key: CacheKey, until: float) -> None:
        """After a failed refresh, keep serving the entry until `until` (never past its expiry) before trying again."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.refresh_at = min(until, entry.token.expires_at)

    def invalidate(self, key: CacheKey, access_token: str | None = None) -> None:
        """Drop the entry; with `access_token`, only if it still holds that token.

        Many requests rejected with the same stale token then cause one refresh, not one each.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (access_token is None or entry.token.access_token == access_token):
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class SyncSingleFlight:
    """One refresh per key at a time across threads: a threading.Lock per key."""

    def __init__(self) -> None:
        self._locks: dict[CacheKey, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, key: CacheKey) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


class AsyncSingleFlight:
    """One refresh per key at a time across tasks: the first caller starts a Task, the others await it.

    Task-agnostic on purpose: no lock is held by a caller, so a caller that is cancelled, or an httpx auth
    flow resumed from another task, cannot strand the others (PITFALLS.md, the MCP SDK's anyio.Lock bug).
    A caller's cancellation does not cancel the shared refresh (asyncio.shield).
    """

    def __init__(self) -> None:
        self._inflight: dict[CacheKey, asyncio.Task[Token]] = {}

    async def run(self, key: CacheKey, refresh: Callable[[], Awaitable[Token]]) -> Token:
        task = self._inflight.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(_call(refresh))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: CacheKey, task: asyncio.Task[Token]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so that a refresh whose waiters all left logs no "never retrieved"


async def _call(refresh: Callable[[], Awaitable[T]]) -> T:
    return await refresh()
