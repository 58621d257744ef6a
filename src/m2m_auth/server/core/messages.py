"""What the edge hands the core and what the core hands back (Authlib's (status, body, headers))."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m2m_auth.errors import OAuthError

__all__ = ["OAuthRequest", "EndpointResponse", "error_response", "NO_STORE"]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True, slots=True)
class OAuthRequest:
    form: dict[str, str]
    authorization: str | None = None
    # RFC 8707 lets `resource` repeat; every other parameter is single (RFC 6749 §3.2).
    resources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointResponse:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


def error_response(exc: OAuthError) -> EndpointResponse:
    return EndpointResponse(exc.status, exc.body(), exc.headers())
