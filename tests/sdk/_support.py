"""Helpers for the SDK tests: a fake clock, request counters, a scripted flaky endpoint and a protected service.

The flaky endpoint is the one fake here: our server cannot be made to answer 503 or 429 on demand, nor be
restarted on the same port, so a thread-based HTTP server scripts those answers and proxies the rest to the
real server. Everything else talks to a real `m2m-auth serve` process.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .._pg import free_port

__all__ = [
    "FakeClock",
    "TokenRequests",
    "tokens_issued",
    "Scripted",
    "FlakyTokenEndpoint",
    "protected_service",
    "SleepRecorder",
    "AsyncSleepRecorder",
]


class FakeClock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TokenRequests:
    """httpx event hooks counting the requests a token client sends (thread- and task-safe)."""

    def __init__(self) -> None:
        self.token = 0
        self.discovery = 0
        self._lock = threading.Lock()

    def _count(self, request: httpx.Request) -> None:
        with self._lock:
            if request.url.path.endswith("/oauth/token"):
                self.token += 1
            elif "/.well-known/" in request.url.path:
                self.discovery += 1

    async def _acount(self, request: httpx.Request) -> None:
        self._count(request)

    def client(self) -> httpx.Client:
        return httpx.Client(event_hooks={"request": [self._count]})

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(event_hooks={"request": [self._acount]})


def tokens_issued(url: str) -> float:
    """The server's own count of issued tokens (m2m_auth_tokens_issued_total, every format)."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(r"^m2m_auth_tokens_issued_total\{[^}]*\} (\S+)$", text, re.M))


class SleepRecorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class AsyncSleepRecorder(SleepRecorder):
    async def __call__(self, seconds: float) -> None:  # type: ignore[override]
        self.delays.append(seconds)


@dataclass
class Scripted:
    """One answer of the flaky endpoint; status None forwards the request to the real server."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


class FlakyTokenEndpoint:
    """A local HTTP server answering from a script, then forwarding every request to `upstream`."""

    def __init__(self, upstream: str, script: list[Scripted], metadata: dict[str, Any] | None = None) -> None:
        self.upstream = upstream
        self.script = list(script)
        self.metadata = metadata
        self.seen: list[str] = []  # "METHOD path" per request
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_url = f"{self.url}/oauth/token"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                outer.seen.append(f"GET {self.path}")
                self._answer(200, {"Content-Type": "application/json"}, json.dumps(outer.metadata).encode())

            def do_POST(self) -> None:
                outer.seen.append(f"POST {self.path}")
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                step = outer.script.pop(0) if outer.script else Scripted(None)
                if step.status is not None:
                    payload = b"" if step.body is None else json.dumps(step.body).encode()
                    self._answer(step.status, {"Content-Type": "application/json", **step.headers}, payload)
                    return
                forwarded = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                upstream = httpx.post(outer.upstream + self.path, content=body, headers=forwarded, timeout=10)
                self._answer(upstream.status_code, {"Content-Type": "application/json"}, upstream.content)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FlakyTokenEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def _protected_app(issuer: str, caller: dict[str, Any]) -> Starlette:
    """GET /protected needs scope `read`; tokens are checked by introspection at our server (RFC 7662).

    GET /always-invalid rejects every token with invalid_token, to show that a client retries only once.
    """

    def challenge(status: int, error: str) -> JSONResponse:
        return JSONResponse(
            {"error": error}, status_code=status, headers={"WWW-Authenticate": f'Bearer realm="svc", error="{error}"'}
        )

    async def protected(request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return JSONResponse({"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(
                f"{issuer}/oauth/introspect",
                data={"token": token},
                auth=(caller["client_id"], caller["client_secret"]),
            )
        info = answer.json()
        if not info.get("active"):
            return challenge(401, "invalid_token")
        if "read" not in info.get("scope", "").split():
            return challenge(403, "insufficient_scope")
        return JSONResponse({"hello": info["client_id"]})

    async def always_invalid(request: Request) -> JSONResponse:
        return challenge(401, "invalid_token")

    return Starlette(routes=[Route("/protected", protected), Route("/always-invalid", always_invalid)])


@contextmanager
def protected_service(issuer: str, caller: dict[str, Any]) -> Iterator[str]:
    """The protected app served by uvicorn in a thread on 127.0.0.1; yields its /protected URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(_protected_app(issuer, caller), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the protected service did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/protected"
    finally:
        server.should_exit = True
        thread.join(10)
