"""Starlette requests in, EndpointResponses and OAuthErrors out, as RFC-shaped JSON.

The OAuth form endpoints carry the load, so they also have a plain-ASGI path (`read_raw_form`,
`encode`, `send_raw`): no Request or Response objects, the same checks and the same answers.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from m2m_auth.errors import InvalidRequest, OAuthError, RequestTooLarge
from m2m_auth.server.core.forms import parse_form_request
from m2m_auth.server.core.messages import NO_STORE, EndpointResponse, OAuthRequest

__all__ = [
    "read_body",
    "read_form",
    "read_json",
    "to_response",
    "json_response",
    "error_to_response",
    "RawResponse",
    "read_raw_form",
    "encode",
    "encode_error",
    "send_raw",
]

JSON = "application/json"
# status, body, headers as ASGI wants them
RawResponse = tuple[int, bytes, list[tuple[bytes, bytes]]]
_JSON_TYPE = (b"content-type", JSON.encode())
_NO_STORE = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in NO_STORE.items()]


async def read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise InvalidRequest("invalid Content-Length")
        if int(length) > limit:
            raise RequestTooLarge(f"the request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLarge(f"the request body is larger than {limit} bytes")
    return bytes(body)


async def read_form(request: Request, limit: int) -> OAuthRequest:
    body = await read_body(request, limit)
    return parse_form_request(body, request.headers.get("content-type"), request.headers.get("authorization"))


async def read_json(request: Request, limit: int, *, empty_ok: bool = False) -> Any:
    body = await read_body(request, limit)
    if not body.strip() and empty_ok:
        return {}
    media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media_type != JSON:
        raise InvalidRequest("the request body must be application/json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the request body is not valid JSON (UTF-8)") from None


async def read_raw_form(scope: Scope, receive: Receive, limit: int) -> OAuthRequest | None:
    """`read_form` on the ASGI scope; None when the client went away before its body arrived."""
    content_type = authorization = length = None
    for name, value in scope["headers"]:  # the first of repeated headers counts, as in Starlette's Headers.get
        if name == b"content-type":
            content_type = content_type if content_type is not None else value.decode("latin-1")
        elif name == b"authorization":
            authorization = authorization if authorization is not None else value.decode("latin-1")
        elif name == b"content-length":
            length = length if length is not None else value
    if length is not None:
        if not length.isdigit():
            raise InvalidRequest("invalid Content-Length")
        if int(length) > limit:
            raise RequestTooLarge(f"the request body is larger than {limit} bytes")
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            raise RequestTooLarge(f"the request body is larger than {limit} bytes")
        if not message.get("more_body", False):
            break
    return parse_form_request(body, content_type, authorization)


def _raw(status: int, body: Any, headers: dict[str, str] | None) -> RawResponse:
    content = b"" if body is None else orjson.dumps(body)
    raw = [(b"content-length", str(len(content)).encode())]
    if body is not None:
        raw.append(_JSON_TYPE)
    if headers is NO_STORE:  # every OAuth answer carries these: encoded once
        raw += _NO_STORE
    elif headers:
        raw.extend((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items())
    return status, content, raw


def encode(result: EndpointResponse) -> RawResponse:
    return _raw(result.status, result.body, result.headers)


def encode_error(exc: OAuthError) -> RawResponse:
    return _raw(exc.status, exc.body(), exc.headers())


async def send_raw(send: Send, response: RawResponse) -> None:
    status, content, headers = response
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    content = b"" if body is None else orjson.dumps(body)
    return Response(content, status, headers, media_type=JSON if body is not None else None)


def to_response(result: EndpointResponse) -> Response:
    return json_response(result.status, result.body, result.headers)


def error_to_response(exc: OAuthError) -> Response:
    return json_response(exc.status, exc.body(), exc.headers())
