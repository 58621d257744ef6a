"""Flask (WSGI): a view decorator that requires a valid bearer token and scopes (RFC 6750).

    validator = IntrospectionValidator(...)

    @app.get("/items")
    @require_token(validator, scopes="read")
    def items():
        return {"client": current_claims().client_id}

The validator runs through its `verify_sync()`: one event loop of its own in a background thread, shared by all
request threads (one cache, one HTTP pool, one in-flight introspection per token).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import Response, g, request

from m2m_auth.errors import OAuthError
from m2m_auth.resource._bearer import authenticate_sync, normalise_scopes, render
from m2m_auth.resource.validators import Claims, TokenValidator

__all__ = ["require_token", "current_claims"]

F = TypeVar("F", bound=Callable[..., Any])


def require_token(
    validator: TokenValidator, scopes: str | Sequence[str] = (), *, realm: str = "m2m-auth"
) -> Callable[[F], F]:
    """Decorate a view to need a valid bearer token carrying `scopes`; the claims are in `current_claims()`."""
    required = normalise_scopes(scopes)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authorization = request.headers.getlist("Authorization")
            try:
                claims = authenticate_sync(validator, authorization, required, f"{request.method} {request.path}")
            except OAuthError as exc:
                status, body, headers = render(exc, realm)
                return Response(json.dumps(body), status=status, headers=headers, mimetype="application/json")
            g.m2m_auth_claims = claims
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def current_claims() -> Claims:
    """The claims of the token the current request was let in with (inside a `require_token` view)."""
    claims = g.get("m2m_auth_claims")
    if not isinstance(claims, Claims):
        raise RuntimeError("current_claims() outside a view decorated with require_token")
    return claims
