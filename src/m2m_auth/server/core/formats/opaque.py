"""Opaque access tokens: a recognisable prefix and 256 random bits; stored only as a SHA-256 digest."""

from __future__ import annotations

import re

from m2m_auth.server import secrets
from m2m_auth.server.core.models import Grant, IssuedToken, TokenRecord
from m2m_auth.server.storage.base import TokenStore

__all__ = ["OpaqueFormat"]

# token_urlsafe(32) is 43 characters of the URL-safe base64 alphabet.
_BODY = r"[A-Za-z0-9_-]{43}"


class OpaqueFormat:
    name = "opaque"

    def __init__(self, store: TokenStore, prefix: str) -> None:
        self._store = store
        self._prefix = prefix
        self._shape = re.compile(re.escape(prefix) + _BODY)

    def recognises(self, token: str) -> bool:
        return self._shape.fullmatch(token) is not None

    async def issue(self, grant: Grant) -> IssuedToken:
        token = secrets.new_secret(self._prefix)
        await self._store.save_token(
            TokenRecord(
                digest=secrets.digest(token),
                client_id=grant.client.client_id,
                scope=grant.scope,
                audience=grant.audience,
                issued_at=grant.issued_at,
                expires_at=grant.expires_at,
            )
        )
        return IssuedToken(token, grant.expires_at - grant.issued_at)

    async def lookup(self, token: str) -> TokenRecord | None:
        if not self.recognises(token):
            return None
        return await self._store.find_token(secrets.digest(token))

    async def revoke(self, token: str, client_id: str | None, now: int) -> bool:
        if not self.recognises(token):
            return False
        return await self._store.revoke_token(secrets.digest(token), client_id, now)
