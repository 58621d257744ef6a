"""What a resource server does with our JWTs (PyJWT), and a look at the signing keys as stored."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import jwt

__all__ = [
    "header",
    "claims",
    "kids",
    "verify",
    "wait_until",
    "StoredKey",
    "stored_keys",
    "forge",
]

T = TypeVar("T")


def header(token: str) -> dict[str, Any]:
    return dict(jwt.get_unverified_header(token))


def claims(token: str) -> dict[str, Any]:
    """The payload, unverified: for looking, never for trusting."""
    return dict(jwt.decode(token, options={"verify_signature": False}))


def kids(url: str) -> list[str]:
    response = httpx.get(f"{url}/.well-known/jwks.json", timeout=10)
    assert response.status_code == 200, response.text
    return [key["kid"] for key in response.json()["keys"]]


def verify(
    token: str,
    jwks_url: str,
    *,
    issuer: str,
    audience: str,
    algorithm: str = "RS256",
) -> dict[str, Any]:
    """RFC 9068 §4 validation as a Python resource server would do it: key from the JWKS by kid,
    algorithm pinned, `iss`, `aud` and `exp` checked, `typ` must be at+jwt. A fresh PyJWKClient
    each time, so no cached key set hides what the server publishes now."""
    typ = header(token).get("typ")
    if typ not in ("at+jwt", "application/at+jwt"):
        raise jwt.InvalidTokenError(f"typ {typ!r} is not at+jwt")
    signing_key = jwt.PyJWKClient(jwks_url, cache_keys=False, cache_jwk_set=False).get_signing_key_from_jwt(token)
    return dict(
        jwt.decode(
            token,
            signing_key.key,
            algorithms=[algorithm],
            issuer=issuer,
            audience=audience,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]},
        )
    )


def wait_until(probe: Callable[[], T | None], what: str, deadline: float = 20.0, interval: float = 0.1) -> T:
    """Poll until `probe` returns something truthy; fail with `what` once the deadline passed."""
    end = time.monotonic() + deadline
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"after {deadline} s still waiting for: {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class StoredKey:
    kid: str
    generation: int
    alg: str
    public_jwk: dict[str, Any]
    private_jwk: bytes
    encryption: str
    activates_at: int


def stored_keys(database_url: str) -> list[StoredKey]:
    """The signing_keys table as it sits in the database, read with the plain drivers (not our code)."""
    sql = (
        "SELECT kid, generation, alg, public_jwk, private_jwk, encryption, activates_at "
        "FROM signing_keys ORDER BY generation"
    )
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(sql).fetchall()
    else:
        import asyncpg

        async def fetch() -> list[Any]:
            conn = await asyncpg.connect(database_url)
            try:
                return list(await conn.fetch(sql))
            finally:
                await conn.close()

        rows = asyncio.run(fetch())
    return [
        StoredKey(
            kid=row[0],
            generation=int(row[1]),
            alg=row[2],
            public_jwk=json.loads(row[3]) if isinstance(row[3], str) else dict(row[3]),
            private_jwk=bytes(row[4]),
            encryption=row[5],
            activates_at=int(row[6]),
        )
        for row in rows
    ]


def forge(database_url: str, payload: dict[str, Any], headers: dict[str, Any]) -> str:
    """A JWT signed with the server's current signing key, read from an unencrypted database:
    the only way to get a token that is validly signed by the server but is not one it issues."""
    now = time.time()
    active = [k for k in stored_keys(database_url) if k.activates_at <= now][-1]
    assert active.encryption == "none", "only an unencrypted key can be read back"
    private = jwt.PyJWK(json.loads(active.private_jwk), algorithm=active.alg)
    return jwt.encode(payload, private.key, algorithm=active.alg, headers={"kid": active.kid, **headers})
