"""Client authentication at the token, introspection and revocation endpoints (RFC 6749 §2.3).

client_secret_basic (with the §2.3.1 form-decoding of id and secret) and client_secret_post;
private_key_jwt (RFC 7523) plugs in as another method.
"""

from __future__ import annotations

import binascii
import logging
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote_plus

from m2m_auth.errors import InvalidClient, InvalidRequest
from m2m_auth.server import secrets
from m2m_auth.server.core.assertions import JWT_BEARER, unverified_issuer
from m2m_auth.server.core.clients import ClientRegistry
from m2m_auth.server.core.clock import Clock
from m2m_auth.server.core.messages import OAuthRequest
from m2m_auth.server.core.models import Client, is_client_id

__all__ = [
    "Credentials",
    "extract_credentials",
    "ClientAuthenticator",
    "SecretVerifier",
    "SECRET_METHODS",
    "METHODS",
    "Verifier",
]

log = logging.getLogger("m2m_auth.client_auth")

SECRET_METHODS = ("client_secret_basic", "client_secret_post")
METHODS = (*SECRET_METHODS, "private_key_jwt")
_MAX_CREDENTIAL_LENGTH = 1024
_MAX_ASSERTION_LENGTH = 8192
# Compared against when the client is unknown, so unknown and known ids take the same path.
_DUMMY_DIGEST = secrets.digest("m2m-auth-dummy-secret")


@dataclass(frozen=True, slots=True)
class Credentials:
    method: str
    client_id: str
    secret: str


def extract_credentials(request: OAuthRequest) -> Credentials:
    """Find the one authentication method used; more than one is refused (RFC 6749 §2.3)."""
    form = request.form
    header = request.authorization
    basic: Credentials | None = None
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "basic":
            basic = _parse_basic(value.strip())
    if basic is not None:
        if "client_secret" in form or "client_assertion" in form:
            raise InvalidRequest("use one client authentication method, not several")
        if "client_id" in form and form["client_id"] != basic.client_id:
            raise InvalidRequest("client_id does not match the Authorization header")
        return basic
    if "client_assertion" in form or "client_assertion_type" in form:
        return _assertion_credentials(form)
    client_id = form.get("client_id")
    secret = form.get("client_secret")
    if client_id and secret:
        return Credentials("client_secret_post", client_id, secret)
    raise InvalidClient("client authentication failed", detail="no client credentials in the request")


def _assertion_credentials(form: dict[str, str]) -> Credentials:
    if "client_secret" in form:
        raise InvalidRequest("use one client authentication method, not several")
    if form.get("client_assertion_type") != JWT_BEARER:
        raise InvalidClient("client authentication failed", detail="unsupported client_assertion_type")
    assertion = form.get("client_assertion", "")
    issuer = unverified_issuer(assertion)
    client_id = form.get("client_id") or issuer
    if not client_id or (issuer is not None and issuer != client_id):
        raise InvalidClient("client authentication failed", detail="client assertion names no client, or another one")
    return Credentials("private_key_jwt", client_id, assertion)


def _parse_basic(value: str) -> Credentials:
    try:
        decoded = binascii.a2b_base64(value, strict_mode=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidClient("malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed Basic credentials")
    try:
        client_id = _form_decoded(client_id)
        secret = _form_decoded(secret)
    except UnicodeDecodeError:
        raise InvalidClient("malformed Basic credentials") from None
    if not client_id or not secret:
        raise InvalidClient("malformed Basic credentials")
    return Credentials("client_secret_basic", client_id, secret)


def _form_decoded(value: str) -> str:
    """RFC 6749 §2.3.1's form-decoding; generated ids and secrets have nothing to decode."""
    return unquote_plus(value, errors="strict") if "%" in value or "+" in value else value


def _loggable(client_id: str) -> str:
    """An unknown client id as it may appear in a log: callers who swap id and secret must not leak the secret."""
    if not is_client_id(client_id) or client_id.startswith(("m2m_cs_", "m2m_at_", "m2m_admin_")) or len(client_id) > 40:
        return "(not shown: not shaped like a client id)"
    return repr(client_id)


class Verifier(Protocol):
    async def verify(self, credentials: Credentials, client: Client, registry: ClientRegistry) -> Client | None:
        """The client if the credentials prove it; None, or InvalidClient with a detail, if not."""
        ...


class SecretVerifier:
    """Shared-secret methods: SHA-256 of the presented secret against each usable stored digest."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def _matches(self, client: Client, presented: bytes) -> bool:
        now = self._clock.now()
        ok = False
        for stored in client.secrets:  # no early exit: the time taken does not tell which secret matched
            ok |= stored.usable(now) and secrets.matches(presented, stored.digest)
        return ok

    async def verify(self, credentials: Credentials, client: Client, registry: ClientRegistry) -> Client | None:
        presented = secrets.digest(credentials.secret)
        if self._matches(client, presented):
            return client
        # The secret may have been rotated by another replica: re-read once, at most once a second.
        if registry.age(client.client_id) >= 1.0:
            fresh = await registry.get(client.client_id, fresh=True)
            if fresh is not None and self._matches(fresh, presented):
                return fresh
        return None


class ClientAuthenticator:
    def __init__(self, registry: ClientRegistry, verifiers: dict[str, Verifier]) -> None:
        self._registry = registry
        self._verifiers = verifiers

    async def authenticate(self, request: OAuthRequest) -> Client:
        """The authenticated, enabled client, or InvalidClient whatever went wrong."""
        credentials = extract_credentials(request)
        limit = _MAX_ASSERTION_LENGTH if credentials.method == "private_key_jwt" else _MAX_CREDENTIAL_LENGTH
        if len(credentials.client_id) > _MAX_CREDENTIAL_LENGTH or len(credentials.secret) > limit:
            raise InvalidClient("client authentication failed", detail="credentials too long")
        client = await self._registry.get(credentials.client_id)
        if client is None:
            secrets.matches(secrets.digest(credentials.secret), _DUMMY_DIGEST)
            raise InvalidClient(
                "client authentication failed", detail=f"unknown client {_loggable(credentials.client_id)}"
            )
        registered = client.token_endpoint_auth_method
        # Both shared-secret methods carry the same secret, so either is accepted for a secret client.
        allowed = SECRET_METHODS if registered in SECRET_METHODS else (registered,)
        verifier = self._verifiers.get(credentials.method)
        if credentials.method not in allowed or verifier is None:
            raise InvalidClient(
                "client authentication failed",
                detail=f"client {client.client_id!r} must authenticate with {registered}",
            )
        verified = await verifier.verify(credentials, client, self._registry)
        if verified is None:
            raise InvalidClient("client authentication failed", detail=f"wrong secret for client {client.client_id!r}")
        if verified.disabled:
            raise InvalidClient("client authentication failed", detail=f"client {client.client_id!r} is disabled")
        return verified
