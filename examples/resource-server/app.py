"""Service B: a FastAPI resource server protected by m2m-auth.

    python examples/resource-server/app.py

GET /protected needs scope `read`; POST /things needs `admin:write` (the second route shows how a scope check is
added). Tokens are checked by introspection (RFC 7662) by default, or locally as JWTs with RESOURCE_VALIDATION=jwt.
Configured by the environment (see README.md beside this file and shared/CONTRACT.md):

    M2M_AUTH_ISSUER           the authorization server (discovery: /.well-known/oauth-authorization-server)
    RESOURCE_CLIENT_ID        this service's own client at the authorization server (introspection mode)
    RESOURCE_CLIENT_SECRET
    RESOURCE_VALIDATION       introspection (default) or jwt
    RESOURCE_AUDIENCE         the audience tokens must name (required for jwt, optional for introspection)
    RESOURCE_CACHE_MAX_TTL    seconds a cached introspection answer may be reused (default 5; 0: ask every time)
    PORT                      default 8081; HOST default 127.0.0.1
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI

from m2m_auth.resource import Claims, IntrospectionValidator, JWTValidator
from m2m_auth.resource.fastapi import RequireScopes


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        sys.exit(f"resource-server: set {name}")
    return value


def make_validator() -> IntrospectionValidator | JWTValidator:
    issuer = _env("M2M_AUTH_ISSUER").rstrip("/")
    mode = os.environ.get("RESOURCE_VALIDATION", "introspection").strip().lower()
    audience = os.environ.get("RESOURCE_AUDIENCE") or None
    if mode == "jwt":
        if audience is None:
            sys.exit("resource-server: RESOURCE_VALIDATION=jwt needs RESOURCE_AUDIENCE")
        return JWTValidator(issuer=issuer, audience=audience)
    if mode != "introspection":
        sys.exit(f"resource-server: RESOURCE_VALIDATION must be introspection or jwt, not {mode!r}")
    return IntrospectionValidator(
        issuer=issuer,
        client_id=_env("RESOURCE_CLIENT_ID"),
        client_secret=_env("RESOURCE_CLIENT_SECRET"),
        audience=audience,
        cache_max_ttl=float(os.environ.get("RESOURCE_CACHE_MAX_TTL", "5")),
    )


def create_app() -> FastAPI:
    validator = make_validator()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.token_validator = validator
        yield
        await validator.aclose()

    app = FastAPI(title="Service B (m2m-auth example)", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/protected")
    async def protected(claims: Annotated[Claims, Depends(RequireScopes("read"))]) -> dict[str, Any]:
        return {"message": "hello from service B", "client_id": claims.client_id, "scope": sorted(claims.scopes)}

    # A second scope check: one more dependency on the route, nothing else.
    @app.post("/things", status_code=201)
    async def create_thing(claims: Annotated[Claims, Depends(RequireScopes("admin:write"))]) -> dict[str, Any]:
        return {"created": True, "by": claims.client_id}

    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app()
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8081"))
    uvicorn.run(app, host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
