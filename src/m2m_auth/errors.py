"""OAuth errors, one class per RFC error code (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7591 §3.2.2, RFC 8707).

Shared by the server (which renders them) and the SDK (which raises them from error bodies).
`description` is safe to show the client; `detail` is for logs and `m2m-auth explain` only.
"""

from __future__ import annotations

__all__ = [
    "OAuthError",
    "InvalidRequest",
    "InvalidClient",
    "InvalidGrant",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "InsufficientScope",
    "InvalidClientMetadata",
    "NotFound",
    "RequestTooLarge",
    "TemporarilyUnavailable",
    "ServerError",
    "error_for_code",
]


class OAuthError(Exception):
    error: str = "invalid_request"
    status: int = 400

    def __init__(self, description: str = "", *, detail: str = "", status: int | None = None) -> None:
        super().__init__(description or self.error)
        self.description = description
        self.detail = detail or description
        if status is not None:
            self.status = status

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body

    def headers(self) -> dict[str, str]:
        return {"Cache-Control": "no-store"}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """Always 401 with a challenge, whatever authentication method was tried (RFC 6749 §5.2)."""

    error = "invalid_client"
    status = 401

    def headers(self) -> dict[str, str]:
        return {"Cache-Control": "no-store", "WWW-Authenticate": 'Basic realm="m2m-auth"'}


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    error = "invalid_target"


class _BearerError(OAuthError):
    """RFC 6750 §3: the challenge carries the error code."""

    scope: str = ""

    def headers(self) -> dict[str, str]:
        challenge = f'Bearer realm="m2m-auth", error="{self.error}"'
        if self.description:
            challenge += f', error_description="{_quote(self.description)}"'
        if self.scope:
            challenge += f', scope="{_quote(self.scope)}"'
        return {"Cache-Control": "no-store", "WWW-Authenticate": challenge}


class InvalidToken(_BearerError):
    error = "invalid_token"
    status = 401


class InsufficientScope(_BearerError):
    error = "insufficient_scope"
    status = 403

    def __init__(self, description: str = "", *, scope: str = "", detail: str = "") -> None:
        super().__init__(description, detail=detail)
        self.scope = scope


class InvalidClientMetadata(OAuthError):
    error = "invalid_client_metadata"


class NotFound(OAuthError):
    error = "not_found"
    status = 404


class RequestTooLarge(OAuthError):
    error = "invalid_request"
    status = 413


class TemporarilyUnavailable(OAuthError):
    """The storage is unreachable; clients should retry (RFC 6749 §4.1.2.1 names the code)."""

    error = "temporarily_unavailable"
    status = 503
    retry_after = 2

    def headers(self) -> dict[str, str]:
        return {"Cache-Control": "no-store", "Retry-After": str(self.retry_after)}


class ServerError(OAuthError):
    error = "server_error"
    status = 500


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


_BY_CODE: dict[str, type[OAuthError]] = {
    cls.error: cls
    for cls in (
        InvalidClient,
        InvalidGrant,
        UnauthorizedClient,
        UnsupportedGrantType,
        InvalidScope,
        InvalidTarget,
        InvalidToken,
        InsufficientScope,
        InvalidClientMetadata,
        NotFound,
        TemporarilyUnavailable,
        ServerError,
        InvalidRequest,
    )
}


def error_for_code(code: str, description: str = "", status: int | None = None) -> OAuthError:
    """Turn an error body received from a server back into a typed exception."""
    cls = _BY_CODE.get(code, OAuthError)
    err = cls(description, status=status) if cls is not InsufficientScope else cls(description)
    if cls is OAuthError:
        err.error = code
    return err
