"""Public keys of private_key_jwt clients: registered inline (`jwks`) or fetched from `jwks_uri`.

A fetch has a timeout and a size limit and is cached; an assertion with an unknown kid makes one
refetch (the client may have rotated its key), at most once a minute per client, so forged kids
cannot turn this server into a request flood against the client's host.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from m2m_auth.server.core.clock import Clock
from m2m_auth.server.core.models import Client

__all__ = ["ClientJwks", "MAX_JWKS_BYTES"]

log = logging.getLogger("m2m_auth.client_jwks")

MAX_JWKS_BYTES = 65536
_REFETCH_INTERVAL = 60.0
_FAILURE_BACKOFF = 10.0


@dataclass(slots=True)
class _Entry:
    uri: str
    keys: list[dict[str, Any]]
    fetched_at: float
    attempted_at: float
    kid_refetched_at: float = float("-inf")


class ClientJwks:
    def __init__(self, http: httpx.AsyncClient, clock: Clock, cache_ttl: float, timeout: float | None = None) -> None:
        self._http = http
        # A deadline for the whole fetch: httpx's timeout bounds each read, so a host trickling bytes
        # could hold a request (and a pooled connection) for hours.
        self._timeout = timeout
        self._clock = clock
        self._ttl = cache_ttl
        self._cache: dict[str, _Entry] = {}

    async def keys_for(self, client: Client, kid: str | None) -> list[dict[str, Any]]:
        if client.jwks is not None:
            return list(client.jwks.get("keys", []))
        if not client.jwks_uri:
            return []
        now = self._clock.now()
        entry = self._cache.get(client.client_id)
        if entry is None or entry.uri != client.jwks_uri:
            entry = _Entry(client.jwks_uri, [], 0.0, float("-inf"))
            self._cache[client.client_id] = entry
        stale = now - entry.fetched_at >= self._ttl
        unknown_kid = kid is not None and all(k.get("kid") != kid for k in entry.keys)
        since_attempt = now - entry.attempted_at
        # A client that rotated its key is picked up at once; forged kids get one fetch a minute.
        refetch = not stale and unknown_kid and now - entry.kid_refetched_at >= _REFETCH_INTERVAL and since_attempt >= 1
        if (stale and since_attempt >= _FAILURE_BACKOFF) or refetch:
            if refetch:
                entry.kid_refetched_at = now
            entry.attempted_at = now
            fetched = await self._fetch(entry.uri)
            if fetched is not None:
                entry.keys, entry.fetched_at = fetched, now
        return entry.keys

    async def _fetch(self, uri: str) -> list[dict[str, Any]] | None:
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._http.stream("GET", uri, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    log.warning("jwks_uri %s answered %d", uri, response.status_code)
                    return None
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        log.warning("jwks_uri %s sent more than %d bytes", uri, MAX_JWKS_BYTES)
                        return None
            document = json.loads(body)
        except (httpx.HTTPError, ValueError, TimeoutError) as exc:
            log.warning("jwks_uri %s could not be fetched: %s", uri, type(exc).__name__)
            return None
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            log.warning("jwks_uri %s is not a JWK set", uri)
            return None
        return [k for k in keys if isinstance(k, dict)]
