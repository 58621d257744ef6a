"""The OAuth endpoints: read the request, call the core, write the response. Nothing else."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from m2m_auth.errors import OAuthError
from m2m_auth.server.asgi.convert import RawResponse, encode, encode_error, json_response, read_raw_form, send_raw

__all__ = ["FormEndpoint", "form_endpoint", "metadata", "jwks"]


class FormEndpoint:
    """POST /oauth/token, /introspect, /revoke: a plain ASGI app, without Request or Response objects.

    These routes carry the load; everything else uses Starlette's request/response functions.
    """

    def __init__(self, operation: str) -> None:
        self.operation = operation  # the AuthorizationServer method: token, introspect or revoke
        self.__name__ = operation

    async def answer(self, scope: Scope, receive: Receive) -> RawResponse | None:
        """The response to send; None if the client went away before its request arrived."""
        state = scope["app"].state
        try:
            oauth_request = await read_raw_form(scope, receive, state.settings.max_body_size)
        except OAuthError as exc:
            return encode_error(exc)
        if oauth_request is None:
            return None
        return encode(await getattr(state.server, self.operation)(oauth_request))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.answer(scope, receive)
        if response is not None:
            await send_raw(send, response)


def form_endpoint(operation: str) -> FormEndpoint:
    """`operation` names the AuthorizationServer method: token, introspect or revoke."""
    return FormEndpoint(operation)


async def metadata(request: Request) -> Response:
    return json_response(200, request.app.state.metadata, {"Cache-Control": "public, max-age=300"})


async def jwks(request: Request) -> Response:
    # Shorter than the pre-publication window, so validators see a new key before it signs.
    max_age = request.app.state.settings.jwks_max_age
    return json_response(200, request.app.state.keys.jwks(), {"Cache-Control": f"public, max-age={max_age}"})
