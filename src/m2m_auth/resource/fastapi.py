"""FastAPI: a dependency that requires a valid bearer token, and scopes per route (RFC 6750).

    app.state.token_validator = IntrospectionValidator(...)   # or pass validator= to RequireScopes

    @app.get("/items")
    async def items(claims: Annotated[Claims, Depends(RequireScopes("read"))]): ...

Refusals are `HTTPException`s: 401 with `WWW-Authenticate: Bearer` (also for a missing token; FastAPI's own
security classes answered 403 there before 0.122), 403 `insufficient_scope` with `scope="..."`, 503 when the
authorization server cannot be asked. Behind `BearerAuthMiddleware` the claims it put in `scope["auth"]` are reused.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from m2m_auth.errors import OAuthError
from m2m_auth.resource._bearer import (
    authorization_headers,
    bearer_token,
    check_scopes,
    log_refusal,
    normalise_scopes,
    render,
)
from m2m_auth.resource.validators import Claims, TokenValidator

__all__ = ["RequireScopes", "TokenClaims"]


class RequireScopes:
    """Dependency: the verified token's `Claims`, which must carry every scope given.

    Args:
        scopes: required scopes ("read", "write", or "read write").
        validator: the validator to use; by default `request.app.state.token_validator`.
        realm: the realm of the `WWW-Authenticate` challenge.
    """

    def __init__(self, *scopes: str, validator: TokenValidator | None = None, realm: str = "m2m-auth") -> None:
        self.scopes = normalise_scopes(scopes)
        self.validator = validator
        self.realm = realm

    async def __call__(self, request: Request) -> Claims:
        # The hot path of every protected request: read from the ASGI scope (building request.url and
        # request.headers costs more than the check), and build log text only for a refusal.
        scope = request.scope
        try:
            claims = scope.get("auth")
            if not isinstance(claims, Claims):  # not verified by BearerAuthMiddleware already
                validator = self.validator or self._app_validator(request)
                claims = await validator.verify(bearer_token(authorization_headers(scope)))
            check_scopes(claims, self.scopes)
        except OAuthError as exc:
            log_refusal(exc, f"{scope.get('method', '')} {scope.get('path', '')}")
            status, body, headers = render(exc, self.realm)
            raise HTTPException(status, detail=body, headers=headers) from None
        return claims

    def _app_validator(self, request: Request) -> TokenValidator:
        validator: TokenValidator | None = getattr(request.app.state, "token_validator", None)
        if validator is None:
            raise RuntimeError("RequireScopes needs validator=... or app.state.token_validator")
        return validator


TokenClaims = Annotated[Claims, Depends(RequireScopes())]
"""Any valid bearer token, no scope required: `async def view(claims: TokenClaims)`."""
