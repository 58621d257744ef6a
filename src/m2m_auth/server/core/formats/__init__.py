"""Token formats as strategies: the grant never branches on format."""

from __future__ import annotations

from typing import Protocol

from m2m_auth.server.core.models import Grant, IssuedToken, TokenRecord

__all__ = ["TokenFormat"]


class TokenFormat(Protocol):
    name: str

    def recognises(self, token: str) -> bool:
        """Cheap shape check, so lookups of garbage never reach the database."""
        ...

    async def issue(self, grant: Grant) -> IssuedToken: ...

    async def lookup(self, token: str) -> TokenRecord | None:
        """The stored record of a token this format issued, active or not; None if unknown."""
        ...

    async def revoke(self, token: str, client_id: str | None, now: int) -> bool: ...
