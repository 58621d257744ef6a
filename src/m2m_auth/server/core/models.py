"""Domain records shared by the core and the storage (plain dataclasses, not ORM rows)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ClientSecret",
    "Client",
    "TokenRecord",
    "Grant",
    "IssuedToken",
    "StoredKey",
    "CLIENT_ID_PATTERN",
    "is_client_id",
]

# Generated ids (URL-safe base64) and chosen ones both fit; anything else names no client.
CLIENT_ID_PATTERN = r"[A-Za-z0-9._~-]{1,128}"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)


def is_client_id(value: str) -> bool:
    return _CLIENT_ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class ClientSecret:
    digest: bytes
    created_at: int
    expires_at: int | None = None

    def usable(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    client_name: str
    scope: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("client_credentials",)
    token_endpoint_auth_method: str = "client_secret_basic"
    access_token_format: str | None = None
    access_token_ttl: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    disabled: bool = False
    tokens_revoked_at: int | None = None  # every token issued at or before this time is revoked
    created_at: int = 0
    updated_at: int = 0
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    secrets: tuple[ClientSecret, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token: keyed by the SHA-256 of the token, never the token itself."""

    digest: bytes
    client_id: str
    scope: tuple[str, ...]
    audience: tuple[str, ...]
    issued_at: int
    expires_at: int
    revoked_at: int | None = None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class Grant:
    """What the client-credentials grant decided; a token format turns it into a token."""

    client: Client
    scope: tuple[str, ...]
    audience: tuple[str, ...]
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A signing key as stored: the private JWK is sealed (see server.keys)."""

    kid: str
    generation: int
    alg: str
    public_jwk: dict[str, Any]
    private_jwk: bytes
    encryption: str
    created_at: int
    activates_at: int
