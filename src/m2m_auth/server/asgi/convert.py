"""Starlette requests in, EndpointResponses and OAuthErrors out, as RFC-shaped JSON."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from m2m_auth.errors import InvalidRequest, OAuthError, RequestTooLarge
from m2m_auth.server.core.forms import parse_form_request
from m2m_auth.server.core.messages import EndpointResponse, OAuthRequest

__all__ = ["read_body", "read_form", "read_json", "to_response", "json_response", "error_to_response"]

JSON = "application/json"


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


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    content = b"" if body is None else orjson.dumps(body)
    return Response(content, status, headers, media_type=JSON if body is not None else None)


def to_response(result: EndpointResponse) -> Response:
    return json_response(result.status, result.body, result.headers)


def error_to_response(exc: OAuthError) -> Response:
    return json_response(exc.status, exc.body(), exc.headers())
