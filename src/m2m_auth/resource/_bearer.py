"""What every integration does with a request: read the bearer token (RFC 6750 §2.1), verify it, check scopes,
log why a request is refused, and render the refusal (RFC 6750 §3). Framework adapters only translate."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from m2m_auth.errors import InsufficientScope, InvalidRequest, InvalidToken, OAuthError, TemporarilyUnavailable
from m2m_auth.resource._sync import LoopThread
from m2m_auth.resource.validators import Claims, TokenValidator

__all__ = [
    "MissingToken",
    "bearer_token",
    "authorization_headers",
    "check_scopes",
    "authenticate",
    "authenticate_sync",
    "log_refusal",
    "render",
    "render_bytes",
    "normalise_scopes",
]

log = logging.getLogger("m2m_auth.resource")
_fallback_loop = LoopThread("m2m-auth-resource-fallback")


class MissingToken(OAuthError):
    """No bearer credentials at all: 401 with a bare challenge, no error code (RFC 6750 §3.1)."""

    error = ""
    status = 401


def normalise_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    """Required scopes as given: "read write", or ("read", "write")."""
    items = scopes.split() if isinstance(scopes, str) else [s for item in scopes for s in item.split()]
    return tuple(dict.fromkeys(items))


def authorization_headers(scope: Mapping[str, Any]) -> list[str]:
    """The values of an ASGI request's `Authorization` headers, read from the scope (no Headers object built)."""
    return [value.decode("latin-1") for name, value in scope.get("headers", ()) if name.lower() == b"authorization"]


def bearer_token(authorization: Sequence[str]) -> str:
    """The token of the request's `Authorization: Bearer` header (the only place we accept it: RFC 6750 §2.1)."""
    if not authorization:
        raise MissingToken("A bearer access token is required", detail="no Authorization header")
    if len(authorization) > 1:
        raise InvalidRequest("More than one Authorization header", detail="more than one Authorization header")
    scheme, _, rest = authorization[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingToken(
            "A bearer access token is required", detail=f"Authorization scheme {scheme[:20]!r}, not Bearer"
        )
    token = rest.strip()
    if "," in token:  # WSGI joins repeated headers with ", "; a bearer token has no comma (RFC 6750 §2.1)
        raise InvalidRequest("More than one Authorization header", detail="more than one Authorization header")
    if not token:
        raise InvalidToken("The access token is invalid", detail="malformed: empty bearer token")
    return token


def check_scopes(claims: Claims, required: Collection[str]) -> None:
    missing = [scope for scope in required if scope not in claims.scopes]
    if missing:
        raise InsufficientScope(
            "The access token lacks a required scope",
            scope=" ".join(required),
            detail=f"missing scope {' '.join(missing)} (client {claims.client_id!r} has {sorted(claims.scopes)})",
        )


def log_refusal(exc: OAuthError, where: str) -> None:
    """The reason, never the token (details are built from checks and claims, not from the credentials)."""
    if isinstance(exc, TemporarilyUnavailable):
        log.warning("bearer token not checked on %s: authorization server unavailable (%s)", where, exc.detail)
    else:
        log.info("bearer token refused on %s: %s", where, exc.detail)


async def authenticate(
    validator: TokenValidator, authorization: Sequence[str], required_scopes: Collection[str], where: str
) -> Claims:
    try:
        claims = await validator.verify(bearer_token(authorization))
        check_scopes(claims, required_scopes)
    except OAuthError as exc:
        log_refusal(exc, where)
        raise
    return claims


def authenticate_sync(
    validator: TokenValidator, authorization: Sequence[str], required_scopes: Collection[str], where: str
) -> Claims:
    try:
        token = bearer_token(authorization)
        verify_sync = getattr(validator, "verify_sync", None)
        claims = verify_sync(token) if verify_sync is not None else _fallback_loop.run(validator.verify(token))
        check_scopes(claims, required_scopes)
    except OAuthError as exc:
        log_refusal(exc, where)
        raise
    return claims


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render(exc: OAuthError, realm: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) of a refusal, Authlib's shape; adapters turn it into their response type."""
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, TemporarilyUnavailable):
        headers.update(exc.headers())
        return exc.status, {"error": exc.error, "error_description": "The authorization server is unavailable"}, headers
    challenge = f'Bearer realm="{_quote(realm)}"'
    body: dict[str, Any] = {}
    if exc.error:  # a request without credentials gets no error code (RFC 6750 §3.1)
        challenge += f', error="{exc.error}"'
        body["error"] = exc.error
    if exc.description:
        if exc.error:  # a bare challenge stays bare
            challenge += f', error_description="{_quote(exc.description)}"'
        body["error_description"] = exc.description
    scope = getattr(exc, "scope", "")
    if scope:
        challenge += f', scope="{_quote(scope)}"'
        body["scope"] = scope
    headers["WWW-Authenticate"] = challenge
    return exc.status, body, headers


def render_bytes(exc: OAuthError, realm: str) -> tuple[int, bytes, dict[str, str]]:
    status, body, headers = render(exc, realm)
    return status, json.dumps(body).encode(), headers
