"""Administration: client lifecycle, secret rotation, token revocation and `explain`.

Every change goes through here so the per-process client cache is invalidated at once.
"""

from __future__ import annotations

import secrets as _random
import sys
from typing import Any

from m2m_auth.errors import InvalidClientMetadata, InvalidRequest, NotFound
from m2m_auth.server import secrets
from m2m_auth.server.admin.schemas import ClientCreate, ClientUpdate, check_key_material
from m2m_auth.server.core.client_auth import SECRET_METHODS
from m2m_auth.server.core.models import Client, ClientSecret, is_client_id
from m2m_auth.server.core.server import AuthorizationServer
from m2m_auth.server.keys import KeyManager
from m2m_auth.server.settings import Settings
from m2m_auth.server.storage.base import Storage

__all__ = ["AdminService", "ensure_admin_token", "ADMIN_DIGEST_KEY"]

ADMIN_DIGEST_KEY = "admin_token_sha256"


class AdminService:
    def __init__(self, storage: Storage, server: AuthorizationServer, settings: Settings, keys: KeyManager) -> None:
        self._storage = storage
        self._server = server
        self._settings = settings
        self._keys = keys

    def _now(self) -> int:
        return int(self._server.clock.now())

    def _check_ttl(self, ttl: int | None) -> None:
        if ttl is not None and ttl > self._settings.max_access_token_ttl:
            raise InvalidClientMetadata(
                f"access_token_ttl: must be at most {self._settings.max_access_token_ttl} seconds"
            )

    async def create_client(self, data: ClientCreate) -> tuple[Client, str | None]:
        """The new client and its secret, shown this once (None for a private_key_jwt client: it has none)."""
        self._check_ttl(data.access_token_ttl)
        now = self._now()
        uses_secret = data.token_endpoint_auth_method in SECRET_METHODS
        secret = secrets.new_secret(secrets.CLIENT_SECRET_PREFIX) if uses_secret else None
        client = Client(
            client_id=data.client_id or _random.token_hex(16),  # hex: never starts with "-", safe in shells and URLs
            client_name=data.client_name,
            scope=tuple(dict.fromkeys(data.scope.split())),
            audience=tuple(dict.fromkeys(data.audience)),
            grant_types=tuple(data.grant_types) or ("client_credentials",),
            token_endpoint_auth_method=data.token_endpoint_auth_method,
            access_token_format=data.access_token_format,
            access_token_ttl=data.access_token_ttl,
            metadata=data.metadata,
            jwks=data.jwks,
            jwks_uri=data.jwks_uri,
            created_at=now,
            updated_at=now,
            secrets=(ClientSecret(secrets.digest(secret), now),) if secret else (),
        )
        if not await self._storage.create_client(client):
            raise InvalidClientMetadata(f"client_id: {client.client_id!r} is already registered")
        self._server.client_changed(client.client_id)
        return client, secret

    async def list_clients(self) -> list[Client]:
        return await self._storage.list_clients()

    async def get_client(self, client_id: str) -> Client:
        client = await self._storage.get_client(_known_shape(client_id))
        if client is None:
            raise NotFound(f"no client {client_id[:128]!r}")
        return client

    async def update_client(self, client_id: str, data: ClientUpdate) -> Client:
        self._check_ttl(data.access_token_ttl)
        changes: dict[str, Any] = data.model_dump(exclude_unset=True)
        if changes.get("scope") is not None:
            changes["scope"] = tuple(dict.fromkeys(changes["scope"].split()))
        if changes.get("audience") is not None:
            changes["audience"] = tuple(dict.fromkeys(changes["audience"]))
        for required in ("client_name", "token_endpoint_auth_method", "scope", "audience", "metadata", "disabled"):
            if required in changes and changes[required] is None:
                raise InvalidClientMetadata(f"{required}: may not be null")
        if not changes:
            return await self.get_client(client_id)
        if {"token_endpoint_auth_method", "jwks", "jwks_uri"} & changes.keys():
            current = await self.get_client(client_id)
            check_key_material(
                changes.get("token_endpoint_auth_method", current.token_endpoint_auth_method),
                changes.get("jwks", current.jwks),
                changes.get("jwks_uri", current.jwks_uri),
                InvalidClientMetadata,
            )
        updated = await self._storage.update_client(_known_shape(client_id), changes, self._now())
        self._server.client_changed(client_id)
        if updated is None:
            raise NotFound(f"no client {client_id[:128]!r}")
        return updated

    async def delete_client(self, client_id: str) -> None:
        deleted = await self._storage.delete_client(_known_shape(client_id), self._now())
        self._server.client_changed(client_id)
        if not deleted:
            raise NotFound(f"no client {client_id[:128]!r}")

    async def rotate_secret(self, client_id: str, grace_period: int | None) -> tuple[str, int]:
        client = await self.get_client(client_id)
        if client.token_endpoint_auth_method not in SECRET_METHODS:
            raise InvalidRequest(
                f"this client authenticates with {client.token_endpoint_auth_method}: it has no secret"
            )
        now = self._now()
        grace = self._settings.secret_grace_period if grace_period is None else grace_period
        secret = secrets.new_secret(secrets.CLIENT_SECRET_PREFIX)
        if not await self._storage.add_secret(_known_shape(client_id), secrets.digest(secret), now, now + grace):
            raise NotFound(f"no client {client_id[:128]!r}")
        self._server.client_changed(client_id)
        return secret, now + grace

    async def rotate_key(self, delay: int) -> dict[str, Any]:
        key = await self._keys.rotate(delay)
        return next(k for k in self.list_keys() if k["kid"] == key.kid)

    def list_keys(self) -> list[dict[str, Any]]:
        """Every key with its state: next (published, not signing yet), active, retired (published), expired."""
        active = self._keys.signing_key()
        now = self._now()
        rows = []
        for key in self._keys.all_keys():
            if key is active:
                state = "active"
            elif key.activates_at > now:
                state = "next"
            else:
                state = "retired" if self._keys.is_published(key) else "expired"
            rows.append(
                {
                    "kid": key.kid,
                    "alg": key.alg,
                    "generation": key.generation,
                    "state": state,
                    "published": self._keys.is_published(key),
                    "created_at": key.created_at,
                    "activates_at": key.activates_at,
                }
            )
        return rows

    async def revoke_token(self, token: str) -> bool:
        return await self._server.revoke_token(token, None)

    async def revoke_client_tokens(self, client_id: str) -> int:
        await self.get_client(client_id)
        revoked = await self._storage.revoke_tokens_for_client(client_id, self._now())
        self._server.client_changed(client_id)  # its revocation mark covers the JWTs
        return revoked

    async def explain(self, token: str, scope: str | None = None, audience: str | None = None) -> dict[str, Any]:
        """Why a resource server would accept or refuse this token, check by check."""
        now = self._now()
        report: dict[str, Any] = {"issuer": self._server.settings.issuer, "known": False, "active": False}
        reasons: list[str] = []
        token = token.strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        shape = next((f.name for f in self._server.formats.values() if f.recognises(token)), None)
        report["token_format"] = shape
        if shape is None:
            reasons.append(
                "not a token of this server: it does not have the shape of its tokens "
                f"(opaque tokens start with {self._settings.token_prefix!r}, JWTs with 'eyJ'); was it issued by "
                "another server, or cut short when copied?"
            )
            return {**report, "reasons": reasons}
        record = await self._server.lookup(token)
        if record is None:
            reasons.append(
                "unknown to this server: never issued here, issued by another deployment with another database, "
                "or its client was deleted"
                if shape == "opaque"
                else "its signature does not verify with a published key of this server, or its header or claims are "
                "not those of this server's access tokens (typ at+jwt, iss): signed elsewhere, tampered with, or "
                "signed by a key retired long ago"
            )
            return {**report, "reasons": reasons}
        client = await self._storage.get_client(record.client_id)
        report.update(
            known=True,
            client_id=record.client_id,
            client_exists=client is not None,
            client_disabled=bool(client and client.disabled),
            scope=" ".join(record.scope),
            audience=list(record.audience),
            issued_at=record.issued_at,
            expires_at=record.expires_at,
            expires_in=record.expires_at - now,
            revoked_at=record.revoked_at,
        )
        if record.revoked_at is not None:
            whole_client = client is not None and client.tokens_revoked_at == record.revoked_at
            reasons.append(
                f"revoked at {record.revoked_at}" + (", with all of its client's tokens" if whole_client else "")
            )
        if now >= record.expires_at:
            reasons.append(f"expired {now - record.expires_at} s ago (at {record.expires_at})")
        if client is None:
            reasons.append(f"its client {record.client_id!r} no longer exists")
        elif client.disabled:
            reasons.append(f"its client {record.client_id!r} is disabled")
        report["active"] = not reasons
        if scope:
            missing = [s for s in scope.split() if s not in record.scope]
            if missing:
                reasons.append(f"lacks scope {' '.join(missing)} (has: {' '.join(record.scope) or 'none'})")
        if audience and audience not in record.audience:
            reasons.append(f"not for audience {audience!r} (it is for: {', '.join(record.audience)})")
        return {**report, "reasons": reasons}


def _known_shape(client_id: str) -> str:
    if not is_client_id(client_id):
        raise NotFound("no such client")  # cannot exist; PostgreSQL text could not even hold some of them
    return client_id


async def ensure_admin_token(storage: Storage, settings: Settings) -> bytes:
    """The digest admin requests are checked against: from the environment, or generated once and stored."""
    if settings.admin_token is not None:
        return secrets.digest(settings.admin_token.get_secret_value())
    stored = await storage.get_state(ADMIN_DIGEST_KEY)
    if stored is None:
        token = secrets.new_secret(secrets.ADMIN_TOKEN_PREFIX)
        if await storage.put_state_if_absent(ADMIN_DIGEST_KEY, secrets.digest(token).hex()):
            # Printed once, to the terminal, never through logging: only its digest is stored.
            banner = (
                "\n  m2m-auth generated the bootstrap admin token. It is shown only this once;\n"
                "  store it now (M2M_AUTH_ADMIN_TOKEN overrides it, `m2m-auth admin-token reset` replaces it):\n\n"
                f"      {token}\n\n"
            )
            sys.stderr.write(banner)
            sys.stderr.flush()
        stored = await storage.get_state(ADMIN_DIGEST_KEY)
    return bytes.fromhex(stored or "")
