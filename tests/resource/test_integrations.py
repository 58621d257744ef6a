"""The same protected route in Starlette (middleware), FastAPI (dependency) and Flask (decorator), with a real
authorization server: RFC 6750 answers, revocation within the cache bound, and what the log says."""

from __future__ import annotations

import logging
import socket
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import flask
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from m2m_auth.resource import BearerAuthMiddleware, Claims, IntrospectionValidator, JWTValidator, require_scopes
from m2m_auth.resource.fastapi import RequireScopes, TokenClaims
from m2m_auth.resource.flask import current_claims, require_token

from .._server import Api, ServerProcess
from ._support import SERVICE_AUDIENCE, wait_until

with warnings.catch_warnings():  # Starlette 1.x asks TestClient users to move to httpx2; this project uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

Client = dict[str, Any]
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
CACHE_MAX_TTL = 0.5
BARE_CHALLENGE = 'Bearer realm="m2m-auth"'

ReadClaims = Annotated[Claims, Depends(RequireScopes("read"))]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def starlette_app(validator: Any) -> Starlette:
    @require_scopes("read")
    async def protected(request: Request) -> JSONResponse:
        return JSONResponse({"client_id": request.auth.client_id})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"auth": request.auth})

    async def socket_endpoint(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json({"client_id": ws.scope["auth"].client_id})
        await ws.close()

    return Starlette(
        routes=[Route("/protected", protected), Route("/healthz", healthz), WebSocketRoute("/ws", socket_endpoint)],
        middleware=[Middleware(BearerAuthMiddleware, validator=validator, exempt_paths=["/healthz"])],
    )


def fastapi_app(validator: Any) -> FastAPI:
    app = FastAPI()
    app.state.token_validator = validator

    @app.get("/protected")
    async def protected(claims: ReadClaims) -> dict[str, Any]:
        return {"client_id": claims.client_id}

    @app.get("/any")
    async def any_token(claims: TokenClaims) -> dict[str, Any]:
        return {"client_id": claims.client_id}

    return app


def flask_app(validator: Any) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.get("/protected")
    @require_token(validator, scopes="read")
    def protected() -> dict[str, Any]:
        return {"client_id": current_claims().client_id}

    return app


class Service:
    """One framework's app behind its test client, answering in one shape."""

    def __init__(self, name: str, get: Callable[..., Any]) -> None:
        self.name = name
        self._get = get

    def get(
        self, path: str = "/protected", token: str | None = None, headers: list[tuple[str, str]] | None = None
    ) -> Answer:
        sent = list(headers or [])
        if token is not None:
            sent.append(("Authorization", f"Bearer {token}"))
        response = self._get(path, sent)
        body = response.json() if self.name != "flask" else response.get_json()
        if self.name == "fastapi" and isinstance(body, dict) and isinstance(body.get("detail"), dict):
            body = body["detail"]  # HTTPException's body
        return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, body or {})


def introspection_validator(server: ServerProcess, service: Client) -> IntrospectionValidator:
    return IntrospectionValidator(
        issuer=server.url,
        client_id=service["client_id"],
        client_secret=service["client_secret"],
        cache_max_ttl=CACHE_MAX_TTL,
    )


@pytest.fixture(scope="module", params=["starlette", "fastapi", "flask"])
def app(request: pytest.FixtureRequest, server: ServerProcess, service: Client) -> Iterator[Service]:
    validator = introspection_validator(server, service)
    if request.param == "flask":
        client = flask_app(validator).test_client()
        yield Service("flask", lambda path, headers: client.get(path, headers=headers))
        validator.close()
        return
    asgi = starlette_app(validator) if request.param == "starlette" else fastapi_app(validator)
    with TestClient(asgi) as test_client:  # one portal, one event loop: the validator's pool lives on it
        yield Service(request.param, lambda path, headers: test_client.get(path, headers=headers))
        test_client.portal.call(validator.aclose)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="m2m_auth.resource")
    return caplog


@sqlite_only
def test_no_token_is_401_with_a_bare_bearer_challenge(app: Service, logs: pytest.LogCaptureFixture) -> None:
    for headers in ([], [("Authorization", "Basic dXNlcjpwYXNz")]):
        answer = app.get(headers=headers)
        assert answer.status == 401
        assert answer.headers["www-authenticate"] == BARE_CHALLENGE  # no error code (RFC 6750 §3.1)
        assert "error" not in answer.body
    assert "no Authorization header" in logs.text


@sqlite_only
def test_a_bad_token_is_401_invalid_token(app: Service, logs: pytest.LogCaptureFixture) -> None:
    bad = "m2m_at_" + "Z" * 43
    answer = app.get(token=bad)
    assert answer.status == 401
    assert answer.headers["www-authenticate"].startswith('Bearer realm="m2m-auth", error="invalid_token"')
    assert answer.body["error"] == "invalid_token"
    assert "inactive" in logs.text and bad not in logs.text


@sqlite_only
def test_a_valid_token_is_let_in(app: Service, api: Api, caller: Client) -> None:
    answer = app.get(token=api.access_token(caller, scope="read"))
    assert answer.status == 200, answer.body
    assert answer.body == {"client_id": caller["client_id"]}


@sqlite_only
def test_a_token_without_the_scope_is_403_insufficient_scope(
    app: Service, api: Api, caller: Client, logs: pytest.LogCaptureFixture
) -> None:
    token = api.access_token(caller, scope="write")
    answer = app.get(token=token)
    assert answer.status == 403
    challenge = answer.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="read"' in challenge
    assert answer.body["error"] == "insufficient_scope"
    assert "missing scope read" in logs.text and caller["client_id"] in logs.text
    assert token not in logs.text


@sqlite_only
def test_a_revoked_token_is_refused_once_the_cache_bound_passed(
    app: Service, api: Api, caller: Client, logs: pytest.LogCaptureFixture
) -> None:
    token = api.access_token(caller, scope="read")
    assert app.get(token=token).status == 200
    assert api.revoke(caller, token).status_code == 200
    # Accepted from the cache for at most CACHE_MAX_TTL seconds, then refused; polled, not timed.
    answer = wait_until(lambda: (a := app.get(token=token)).status == 401 and a, "401 after revocation")
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert "inactive" in logs.text
    assert token not in logs.text


@sqlite_only
def test_two_authorization_headers_are_400_invalid_request(app: Service, api: Api, caller: Client) -> None:
    token = api.access_token(caller, scope="read")
    answer = app.get(headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")])
    assert answer.status == 400
    assert 'error="invalid_request"' in answer.headers["www-authenticate"]


# --- one framework is enough for what follows -------------------------------------------------------------


@pytest.fixture(scope="module")
def starlette(server: ServerProcess, service: Client) -> Iterator[TestClient]:
    validator = introspection_validator(server, service)
    with TestClient(starlette_app(validator)) as client:
        yield client
        client.portal.call(validator.aclose)


@sqlite_only
def test_exempt_paths_need_no_token(starlette: TestClient) -> None:
    response = starlette.get("/healthz")
    assert response.status_code == 200 and response.json() == {"auth": None}


@sqlite_only
def test_websocket_handshakes_need_a_token_too(starlette: TestClient, api: Api, caller: Client) -> None:
    with pytest.raises(WebSocketDisconnect) as refused, starlette.websocket_connect("/ws"):
        pass
    assert refused.value.code == 1008
    token = api.access_token(caller, scope="read")
    with starlette.websocket_connect("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
        assert ws.receive_json() == {"client_id": caller["client_id"]}


def test_an_unreachable_authorization_server_is_503_not_401(logs: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    validator = IntrospectionValidator(
        introspection_url=f"http://127.0.0.1:{port}/oauth/introspect", client_id="x", client_secret="y", timeout=2
    )
    with TestClient(starlette_app(validator)) as client:
        response = client.get("/protected", headers={"Authorization": "Bearer m2m_at_whatever"})
        client.portal.call(validator.aclose)
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert "retry-after" in response.headers and "www-authenticate" not in response.headers
    assert "authorization server unavailable" in logs.text


@sqlite_only
def test_fastapi_with_a_jwt_validator(
    server: ServerProcess, api: Api, jwt_caller: Client, logs: pytest.LogCaptureFixture
) -> None:
    validator = JWTValidator(server.url, SERVICE_AUDIENCE)
    with TestClient(fastapi_app(validator)) as client:
        good = api.access_token(jwt_caller, scope="read", audience=SERVICE_AUDIENCE)
        elsewhere = api.access_token(jwt_caller, scope="read", audience="other")
        assert client.get("/protected", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        refused = client.get("/any", headers={"Authorization": f"Bearer {elsewhere}"})
        client.portal.call(validator.aclose)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert "wrong audience" in logs.text
    assert good not in logs.text and elsewhere not in logs.text
