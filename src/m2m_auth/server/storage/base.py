"""Storage protocols, one per consumer, each method atomic and shaped by the protocol's needs."""

from __future__ import annotations

from typing import Any, Protocol

from m2m_auth.errors import TemporarilyUnavailable
from m2m_auth.server.core.models import Client, StoredKey, TokenRecord

__all__ = ["StorageUnavailable", "ClientStore", "TokenStore", "JtiStore", "KeyStore", "StateStore", "Storage"]


class StorageUnavailable(TemporarilyUnavailable):
    """The database cannot be reached: the edge answers 503 with Retry-After."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("the service is temporarily unavailable, retry later", detail=detail)


class ClientStore(Protocol):
    async def get_client(self, client_id: str) -> Client | None: ...

    async def list_clients(self) -> list[Client]: ...

    async def create_client(self, client: Client) -> bool:
        """Store a client with its secrets; False if the client_id is taken."""
        ...

    async def update_client(self, client_id: str, changes: dict[str, Any], now: int) -> Client | None:
        """Apply changes; disabling also revokes the client's live tokens in the same transaction."""
        ...

    async def delete_client(self, client_id: str, now: int) -> bool:
        """Remove the client, its secrets and its tokens; its JWTs stay revoked should the id be registered again."""
        ...

    async def add_secret(self, client_id: str, digest: bytes, now: int, previous_expire_at: int) -> bool:
        """Add a secret; older secrets stop working at `previous_expire_at` (or sooner if already set)."""
        ...


class TokenStore(Protocol):
    async def save_token(self, record: TokenRecord) -> None:
        """Durably store a new token; returns only after the commit."""
        ...

    async def find_token(self, digest: bytes) -> TokenRecord | None: ...

    async def revoke_token(self, digest: bytes, client_id: str | None, now: int) -> bool:
        """Mark one token revoked; with client_id, only if it belongs to that client."""
        ...

    async def revoke_tokens_for_client(self, client_id: str, now: int) -> int:
        """Revoke every stored token of the client and mark the time, which also revokes its JWTs."""
        ...


class JtiStore(Protocol):
    """State that JWTs need although they are not stored: the revocation deny list, used assertions."""

    async def revoke_jti(self, jti: str, client_id: str, now: int, expires_at: int, token_digest: bytes) -> bool:
        """Add to the deny list; False if it was there already. `token_digest` tells the token caches."""
        ...

    async def revoked_at(self, jti: str, client_id: str, issued_at: int) -> int | None:
        """When a JWT was revoked: by its jti, or with all of its client's tokens issued up to then."""
        ...

    async def use_assertion(self, client_id: str, jti: str, expires_at: int) -> bool:
        """Record a client assertion's jti; False if it was used before (a replay)."""
        ...


class KeyStore(Protocol):
    async def list_keys(self) -> list[StoredKey]: ...

    async def add_key(self, key: StoredKey) -> bool:
        """Insert; False if that generation exists (another replica created it first)."""
        ...

    async def reseal_key(self, kid: str, private_jwk: bytes, encryption: str, *, expected: bytes) -> bool:
        """Replace a key's sealed bytes if they are still `expected`; False if another process changed them first."""
        ...


class StateStore(Protocol):
    async def get_state(self, key: str) -> str | None: ...

    async def put_state_if_absent(self, key: str, value: str) -> bool:
        """Insert unless present; True if this call inserted it (first replica wins)."""
        ...

    async def put_state(self, key: str, value: str) -> None: ...


class Storage(ClientStore, TokenStore, JtiStore, KeyStore, StateStore, Protocol):
    async def ping(self) -> None: ...

    async def close(self) -> None: ...
