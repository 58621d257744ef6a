"""The OAuth endpoints: read the request, call the core, write the response. Nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from m2m_auth.errors import OAuthError
from m2m_auth.server.asgi.convert import error_to_response, json_response, read_form, to_response

__all__ = ["form_endpoint", "metadata", "jwks"]


def form_endpoint(operation: str) -> Callable[[Request], Awaitable[Response]]:
    """`operation` names the AuthorizationServer method: token, introspect or revoke."""

    async def endpoint(request: Request) -> Response:
        state = request.app.state
        try:
            oauth_request = await read_form(request, state.settings.max_body_size)
        except OAuthError as exc:
            return error_to_response(exc)
        return to_response(await getattr(state.server, operation)(oauth_request))

    endpoint.__name__ = operation
    return endpoint


async def metadata(request: Request) -> Response:
    return json_response(200, request.app.state.metadata, {"Cache-Control": "public, max-age=300"})


async def jwks(request: Request) -> Response:
    # Shorter than the pre-publication window, so validators see a new key before it signs.
    max_age = request.app.state.settings.jwks_max_age
    return json_response(200, request.app.state.keys.jwks(), {"Cache-Control": f"public, max-age={max_age}"})
