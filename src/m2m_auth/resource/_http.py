"""HTTP helpers shared by the validators: a pooled client with timeouts, bounded reads, discovery (RFC 8414)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from m2m_auth.errors import TemporarilyUnavailable

__all__ = ["new_client", "get_json", "discover", "MAX_DOCUMENT"]

MAX_DOCUMENT = 256 * 1024  # metadata, JWKS and introspection answers are a few KiB; refuse to buffer more


def new_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=False,  # a redirect would carry our client credentials elsewhere
        headers={"Accept": "application/json"},
    )


async def read_json(response: httpx.Response, what: str) -> Any:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_DOCUMENT:
            raise TemporarilyUnavailable(
                f"{what} unavailable", detail=f"{what}: answer larger than {MAX_DOCUMENT} bytes"
            )
    try:
        return json.loads(body)
    except ValueError as exc:
        raise TemporarilyUnavailable(f"{what} unavailable", detail=f"{what}: answer is not JSON") from exc


async def get_json(http: httpx.AsyncClient, url: str, what: str) -> Any:
    try:
        async with http.stream("GET", url) as response:
            if response.status_code != 200:
                raise TemporarilyUnavailable(f"{what} unavailable", detail=f"{what}: HTTP {response.status_code}")
            return await read_json(response, what)
    except httpx.HTTPError as exc:
        raise TemporarilyUnavailable(f"{what} unavailable", detail=f"{what}: {type(exc).__name__}: {exc}") from exc


async def discover(http: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
    """The authorization server's metadata (RFC 8414 §3); its `issuer` must be the one configured (§3.3)."""
    url = issuer.rstrip("/") + "/.well-known/oauth-authorization-server"
    metadata = await get_json(http, url, "authorization server metadata")
    if not isinstance(metadata, dict) or metadata.get("issuer") != issuer:
        raise TemporarilyUnavailable(
            "authorization server metadata unavailable",
            detail=f"metadata at {url} names issuer {metadata.get('issuer') if isinstance(metadata, dict) else None!r}, "
            f"not {issuer!r}",
        )
    return metadata
