"""create_app(settings) -> Starlette: the parts are built once, in the lifespan, from explicit objects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from m2m_auth.errors import InvalidRequest, NotFound, OAuthError, ServerError
from m2m_auth.server.admin.service import AdminService, ensure_admin_token
from m2m_auth.server.asgi import admin, endpoints, ops
from m2m_auth.server.asgi.convert import error_to_response
from m2m_auth.server.client_jwks import ClientJwks
from m2m_auth.server.core.assertions import AssertionVerifier, assertion_audiences
from m2m_auth.server.core.client_auth import SECRET_METHODS, ClientAuthenticator, SecretVerifier, Verifier
from m2m_auth.server.core.clients import ClientRegistry
from m2m_auth.server.core.clock import Clock, SystemClock
from m2m_auth.server.core.formats.jwt import JWTFormat
from m2m_auth.server.core.formats.opaque import OpaqueFormat
from m2m_auth.server.core.introspection_cache import IntrospectionCache
from m2m_auth.server.core.server import AuthorizationServer
from m2m_auth.server.keys import KeyManager, KeySealer
from m2m_auth.server.settings import Settings
from m2m_auth.server.storage import migrate
from m2m_auth.server.storage.sql import changes
from m2m_auth.server.storage.sql.engine import create_engine, redact
from m2m_auth.server.storage.sql.purge import Purger
from m2m_auth.server.storage.sql.store import SqlStorage

__all__ = ["create_app", "app_from_env"]

log = logging.getLogger("m2m_auth.server")


class SchemaNotMigrated(RuntimeError):
    pass


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Starlette:
    settings = settings or Settings()
    clock = clock or SystemClock()
    metrics = ops.Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        storage = SqlStorage.from_url(
            settings.database_url,
            pool_size=settings.db_pool_size,
            timeout=settings.db_timeout,
            prepared_statements=settings.db_prepared_statements,
        )
        http = httpx.AsyncClient(timeout=settings.jwks_uri_timeout, follow_redirects=False)
        background: list[asyncio.Task[None]] = []
        # Session-level features (an advisory lock held for the process's life, LISTEN) cannot go through a
        # transaction-mode pooler: they get a direct connection when one is configured.
        session_engine = (
            create_engine(settings.database_direct_url, pool_size=2, timeout=settings.db_timeout)
            if settings.database_direct_url
            else storage.engine
        )
        purger = Purger(session_engine, batch_size=settings.purge_batch_size, clock=clock, events=metrics)
        try:
            current, head = await migrate.current_revision(storage.engine), migrate.head_revision()
            if current != head:
                raise SchemaNotMigrated(
                    f"the database {redact(settings.database_url)} is at schema {current or 'none'}, "
                    f"this server needs {head}: run `m2m-auth migrate`"
                )
            keys = KeyManager(storage, settings, clock, KeySealer.from_settings(settings))
            await keys.start()
            background.append(asyncio.create_task(keys.maintain(), name="signing-keys"))
            registry = ClientRegistry(storage, clock, settings.client_cache_ttl)
            secret_verifier = SecretVerifier(clock)
            assertion_verifier = AssertionVerifier(
                ClientJwks(http, clock, settings.jwks_uri_cache_ttl, settings.jwks_uri_timeout),
                storage,
                clock,
                assertion_audiences(settings.issuer),
                settings.max_assertion_lifetime,
            )
            # Client, key and token changes made on other replicas reach the caches through the database.
            token_cache = IntrospectionCache(
                clock, max_entries=settings.introspection_cache_size, ttl=settings.introspection_cache_ttl
            )
            feed = changes.ChangeListener(session_engine, _invalidator(registry, keys, token_cache), events=metrics)
            if feed.supported:
                token_cache.live = feed.connected.is_set
                storage.listener = feed
            metrics.watch_introspection_cache(token_cache)
            verifiers: dict[str, Verifier] = {m: secret_verifier for m in SECRET_METHODS}
            verifiers["private_key_jwt"] = assertion_verifier
            server = AuthorizationServer(
                settings=settings,
                clients=registry,
                authenticator=ClientAuthenticator(registry, verifiers),
                formats={
                    "opaque": OpaqueFormat(storage, settings.token_prefix),
                    "jwt": JWTFormat(keys, storage, settings.issuer),
                },
                clock=clock,
                events=metrics,
                introspection_cache=token_cache,
            )
            app.state.keys = keys
            app.state.settings = settings
            app.state.storage = storage
            app.state.server = server
            app.state.metadata = server.metadata()
            app.state.admin = AdminService(storage, server, settings, keys)
            app.state.admin_digest = await ensure_admin_token(storage, settings)
            app.state.metrics = metrics
            app.state.change_feed = feed
            background.append(asyncio.create_task(feed.run_forever(), name="change-feed"))
            background.append(
                asyncio.create_task(
                    purger.run_forever(settings.purge_interval, enabled=settings.purge_enabled), name="purge"
                )
            )
            ops.settle_heap()  # full GC pauses were the latency's tail
            log.info("m2m-auth ready: issuer %s, database %s", settings.issuer, redact(settings.database_url))
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await purger.close()  # another replica takes the purge over at once
            if session_engine is not storage.engine:
                await session_engine.dispose()
            await http.aclose()
            await storage.close()

    hot = {
        f"/oauth/{operation}": metrics.instrument(operation, endpoints.form_endpoint(operation))
        for operation in ("token", "introspect", "revoke")
    }
    routes = [
        *[Route(path, endpoint, methods=["POST"]) for path, endpoint in hot.items()],
        Route("/.well-known/oauth-authorization-server", endpoints.metadata, methods=["GET"]),
        Route("/.well-known/openid-configuration", endpoints.metadata, methods=["GET"]),
        Route("/oauth/jwks.json", endpoints.jwks, methods=["GET"]),
        Route("/.well-known/jwks.json", endpoints.jwks, methods=["GET"]),
        Route("/healthz", ops.healthz, methods=["GET"]),
        Route("/readyz", ops.readyz, methods=["GET"]),
        Route("/metrics", ops.metrics, methods=["GET"]),
        *[Route(r.path, metrics.instrument("admin", r.endpoint), methods=r.methods) for r in admin.routes],
    ]
    app = _App(
        hot,
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
    )
    app.router.redirect_slashes = False  # `/oauth/token/` is not an endpoint: 404, not a redirect built from Host
    return app


class _App(Starlette):
    """Starlette, except that POSTs to the OAuth endpoints go straight to them.

    Those carry the load; the middleware stack and the router cost each of them several
    microseconds (bench/README.md). The endpoints answer errors, bugs included, themselves,
    and every other request (other methods too: 405) takes Starlette's way.
    """

    def __init__(self, hot: Mapping[str, ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._hot = hot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self._hot.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _invalidator(registry: ClientRegistry, keys: KeyManager, tokens: IntrospectionCache) -> Callable[[str], None]:
    def on_change(topic: str) -> None:
        if topic.startswith(changes.TOKEN_PREFIX):
            with contextlib.suppress(ValueError):
                tokens.forget(bytes.fromhex(topic.removeprefix(changes.TOKEN_PREFIX)))
        elif topic.startswith(changes.CLIENT_PREFIX):
            client_id = topic.removeprefix(changes.CLIENT_PREFIX)
            registry.invalidate(client_id)
            tokens.forget_client(client_id)
        elif topic == changes.KEYS:
            keys.refresh_soon()
            tokens.clear()  # a key gone from the set takes its tokens' validity with it
        elif topic == changes.ALL:
            registry.invalidate()
            keys.refresh_soon()
            tokens.clear()

    return on_change


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory` and multi-worker serving: settings come from the environment."""
    settings = Settings()
    logger = logging.getLogger("m2m_auth")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(settings.log_level.upper())
    return create_app(settings)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error: OAuthError = NotFound("no such endpoint")
    elif exc.status_code == 405:
        error = InvalidRequest("method not allowed on this endpoint", status=405)
    else:
        error = InvalidRequest(str(exc.detail), status=exc.status_code)
    response = error_to_response(error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # A bug: logged with its traceback for us, never shown to the caller.
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_to_response(ServerError("internal error"))
