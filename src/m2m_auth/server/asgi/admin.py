"""/admin/*: client registration and management, token revocation and explanation.

Authenticated by the bootstrap admin token, or by an access token of this server with scope
`m2m-auth:admin` and the issuer among its audiences, so automation can use client credentials too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from m2m_auth.errors import InsufficientScope, InvalidToken, OAuthError
from m2m_auth.server import secrets
from m2m_auth.server.admin.schemas import (
    ClientCreate,
    ClientUpdate,
    KeyRotation,
    SecretRotation,
    TokenQuery,
    client_json,
    parse_model,
)
from m2m_auth.server.admin.service import AdminService
from m2m_auth.server.asgi.convert import error_to_response, json_response, read_json
from m2m_auth.server.core.server import ADMIN_SCOPE

__all__ = ["routes"]

Handler = Callable[[Request, AdminService], Awaitable[Response]]


async def _authenticate(request: Request) -> None:
    header = request.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("an admin bearer token is required")
    state = request.app.state
    if secrets.matches(secrets.digest(token), state.admin_digest):
        return
    found = await state.server.find_active(token)
    if found is None:
        raise InvalidToken("the admin token is invalid, expired or revoked")
    record, _client = found
    if ADMIN_SCOPE not in record.scope:
        raise InsufficientScope(f"the token lacks scope {ADMIN_SCOPE}", scope=ADMIN_SCOPE)
    # A token minted for another service must not be replayable here by that service.
    if state.settings.issuer not in record.audience:
        raise InvalidToken("the admin token's audience must include this server's issuer")


def _admin(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            await _authenticate(request)
            return await handler(request, request.app.state.admin)
        except OAuthError as exc:
            request.app.state.server.events.request_refused("admin", exc.error, exc.detail)  # never the token
            return error_to_response(exc)

    endpoint.__name__ = handler.__name__
    return endpoint


def _limit(request: Request) -> int:
    return int(request.app.state.settings.max_body_size)


async def create_client(request: Request, admin: AdminService) -> Response:
    data = parse_model(ClientCreate, await read_json(request, _limit(request)))
    client, secret = await admin.create_client(data)
    body = client_json(client) if secret is None else {**client_json(client), "client_secret": secret}
    return json_response(201, body, {"Cache-Control": "no-store", "Location": f"/admin/clients/{client.client_id}"})


async def list_clients(request: Request, admin: AdminService) -> Response:
    return json_response(200, {"clients": [client_json(c) for c in await admin.list_clients()]})


async def show_client(request: Request, admin: AdminService) -> Response:
    return json_response(200, client_json(await admin.get_client(request.path_params["client_id"])))


async def update_client(request: Request, admin: AdminService) -> Response:
    data = parse_model(ClientUpdate, await read_json(request, _limit(request)))
    return json_response(200, client_json(await admin.update_client(request.path_params["client_id"], data)))


async def delete_client(request: Request, admin: AdminService) -> Response:
    await admin.delete_client(request.path_params["client_id"])
    return Response(status_code=204)


async def rotate_secret(request: Request, admin: AdminService) -> Response:
    data = parse_model(SecretRotation, await read_json(request, _limit(request), empty_ok=True))
    client_id = request.path_params["client_id"]
    secret, previous_expires_at = await admin.rotate_secret(client_id, data.grace_period)
    body = {"client_id": client_id, "client_secret": secret, "previous_secret_expires_at": previous_expires_at}
    return json_response(200, body, {"Cache-Control": "no-store"})


async def revoke_client_tokens(request: Request, admin: AdminService) -> Response:
    revoked = await admin.revoke_client_tokens(request.path_params["client_id"])
    return json_response(200, {"revoked": revoked})


async def revoke_token(request: Request, admin: AdminService) -> Response:
    data = parse_model(TokenQuery, await read_json(request, _limit(request)))
    return json_response(200, {"revoked": await admin.revoke_token(data.token)})


async def explain_token(request: Request, admin: AdminService) -> Response:
    data = parse_model(TokenQuery, await read_json(request, _limit(request)))
    return json_response(200, await admin.explain(data.token, data.scope, data.audience), {"Cache-Control": "no-store"})


async def list_keys(request: Request, admin: AdminService) -> Response:
    return json_response(200, {"keys": admin.list_keys()})


async def rotate_key(request: Request, admin: AdminService) -> Response:
    data = parse_model(KeyRotation, await read_json(request, _limit(request), empty_ok=True))
    return json_response(200, await admin.rotate_key(data.delay))


routes = [
    Route("/admin/clients", _admin(create_client), methods=["POST"]),
    Route("/admin/clients", _admin(list_clients), methods=["GET"]),
    Route("/admin/clients/{client_id}", _admin(show_client), methods=["GET"]),
    Route("/admin/clients/{client_id}", _admin(update_client), methods=["PATCH"]),
    Route("/admin/clients/{client_id}", _admin(delete_client), methods=["DELETE"]),
    Route("/admin/clients/{client_id}/secret", _admin(rotate_secret), methods=["POST"]),
    Route("/admin/clients/{client_id}/revoke-tokens", _admin(revoke_client_tokens), methods=["POST"]),
    Route("/admin/tokens/revoke", _admin(revoke_token), methods=["POST"]),
    Route("/admin/tokens/explain", _admin(explain_token), methods=["POST"]),
    Route("/admin/keys", _admin(list_keys), methods=["GET"]),
    Route("/admin/keys/rotate", _admin(rotate_key), methods=["POST"]),
]
