"""Bearer-token authentication as plain ASGI middleware (Starlette's AuthenticationMiddleware shape), RFC 6750.

`lifespan` and other non-HTTP scopes pass through. HTTP requests and WebSocket handshakes need a good token:
the claims land in `scope["auth"]` (`request.auth` in Starlette). Refusals: 401 with `WWW-Authenticate: Bearer`
(with `error="invalid_token"` unless no token was sent), 403 `insufficient_scope` naming the scopes, 503 when the
authorization server cannot be asked. A refused WebSocket handshake is closed with code 1008.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

import anyio.to_thread

from m2m_auth.errors import OAuthError
from m2m_auth.resource._bearer import (
    MissingToken,
    authenticate,
    authorization_headers,
    check_scopes,
    log_refusal,
    normalise_scopes,
    render_bytes,
)
from m2m_auth.resource.validators import Claims, TokenValidator

__all__ = ["BearerAuthMiddleware", "require_scopes"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Refusal:
    """A JSON refusal as an ASGI callable: Starlette's request_response awaits `response(scope, receive, send)`."""

    def __init__(self, exc: OAuthError, realm: str) -> None:
        self.status_code, self.body, self.headers = render_bytes(exc, realm)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation: the handshake is refused
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]
        headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


class BearerAuthMiddleware:
    """Requires a valid bearer token on every HTTP request, except on `exempt_paths` (exact paths, e.g. "/healthz").

    Args:
        app: the ASGI app to protect.
        validator: decides on tokens (`IntrospectionValidator`, `JWTValidator` or your own `TokenValidator`).
        required_scopes: scopes every request needs ("read write" or a sequence); per route, see `require_scopes`.
        exempt_paths: paths served without a token; `scope["auth"]` is None there.
        realm: the realm of the `WWW-Authenticate` challenge.
    """

    def __init__(
        self,
        app: ASGIApp,
        validator: TokenValidator,
        *,
        required_scopes: str | Collection[str] = (),
        exempt_paths: Collection[str] = (),
        realm: str = "m2m-auth",
    ) -> None:
        self.app = app
        self.validator = validator
        self.required_scopes = normalise_scopes(required_scopes)
        self.exempt_paths = frozenset(exempt_paths)
        self.realm = realm

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope.get("path") in self.exempt_paths:
            scope["auth"] = None
            await self.app(scope, receive, send)
            return
        where = f"{scope.get('method', 'WEBSOCKET')} {scope.get('path', '')}"
        try:
            claims = await authenticate(self.validator, authorization_headers(scope), self.required_scopes, where)
        except OAuthError as exc:
            await _Refusal(exc, self.realm)(scope, receive, send)
            return
        scope["auth"] = claims
        await self.app(scope, receive, send)


def require_scopes(*scopes: str, realm: str = "m2m-auth") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a Starlette endpoint `f(request)` behind `BearerAuthMiddleware` to need these scopes.

    Answers 403 `insufficient_scope` (with `scope="..."`) when the token lacks one, and 401 when the request
    carries no verified token (the middleware did not run, or the path is exempt).
    """
    required = normalise_scopes(scopes)

    def decorator(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        is_async = inspect.iscoroutinefunction(endpoint)

        @functools.wraps(endpoint)
        async def wrapper(request: Any) -> Any:
            claims = request.scope.get("auth")
            where = f"{request.scope.get('method', '')} {request.scope.get('path', '')}"
            try:
                if not isinstance(claims, Claims):
                    raise MissingToken("A bearer access token is required", detail="no verified token on this route")
                check_scopes(claims, required)
            except OAuthError as exc:
                log_refusal(exc, where)
                return _Refusal(exc, realm)
            if is_async:
                return await endpoint(request)
            return await anyio.to_thread.run_sync(endpoint, request)

        return wrapper

    return decorator
