"""The authorization server's endpoints as pure functions of an OAuthRequest.

Token endpoint with the client-credentials grant (RFC 6749 §4.4, §5; RFC 8707), introspection
(RFC 7662) and revocation (RFC 7009). Built once at start-up from explicit parts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from m2m_auth.errors import (
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from m2m_auth.scopes import parse_scope
from m2m_auth.server.core.assertions import ASSERTION_ALGS
from m2m_auth.server.core.client_auth import METHODS, ClientAuthenticator
from m2m_auth.server.core.clients import ClientRegistry
from m2m_auth.server.core.clock import Clock
from m2m_auth.server.core.events import Events
from m2m_auth.server.core.formats import TokenFormat
from m2m_auth.server.core.introspection_cache import IntrospectionCache
from m2m_auth.server.core.messages import NO_STORE, EndpointResponse, OAuthRequest, error_response
from m2m_auth.server.core.models import Client, Grant, TokenRecord
from m2m_auth.server.secrets import digest
from m2m_auth.server.settings import Settings

__all__ = ["AuthorizationServer", "INTROSPECT_SCOPE", "ADMIN_SCOPE"]

INTROSPECT_SCOPE = "m2m-auth:introspect"
ADMIN_SCOPE = "m2m-auth:admin"
_INACTIVE = EndpointResponse(200, {"active": False}, NO_STORE)
_MAX_TOKEN_LENGTH = 8192


class AuthorizationServer:
    def __init__(
        self,
        *,
        settings: Settings,
        clients: ClientRegistry,
        authenticator: ClientAuthenticator,
        formats: dict[str, TokenFormat],
        clock: Clock,
        events: Events | None = None,
        introspection_cache: IntrospectionCache | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.authenticator = authenticator
        self.formats = formats
        self.clock = clock
        self.events = events or Events()
        self.introspection_cache = (  # not `or`: an empty cache is falsy (it has a length)
            introspection_cache if introspection_cache is not None else IntrospectionCache(clock, max_entries=0, ttl=0)
        )

    # --- token endpoint (RFC 6749 §4.4, §5.1, §5.2) -------------------------------------------

    async def token(self, request: OAuthRequest) -> EndpointResponse:
        return await self._guard("token", self._token, request)

    async def _token(self, request: OAuthRequest) -> EndpointResponse:
        grant_type = request.form.get("grant_type")
        if not grant_type:
            raise InvalidRequest("grant_type is required")
        if grant_type != "client_credentials":
            raise UnsupportedGrantType(f"grant_type {grant_type[:64]!r} is not supported")
        client = await self.authenticator.authenticate(request)
        if "client_credentials" not in client.grant_types:
            raise UnauthorizedClient("this client may not use the client_credentials grant")
        mark = client.tokens_revoked_at
        while mark is not None and self.clock.now() < mark + 1:
            # Tokens issued in the second of a revoke-all count as revoked (`iat` has whole seconds):
            # wait for the next second rather than hand out a token that is dead on arrival.
            await asyncio.sleep(max(0.005, mark + 1 - self.clock.now()))
        grant = self.decide_grant(client, request)
        token_format = self.formats[client.access_token_format or self.settings.access_token_format]
        issued = await token_format.issue(grant)
        self.events.token_issued(client.client_id, token_format.name)
        body: dict[str, Any] = {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
        }
        if grant.scope:
            body["scope"] = " ".join(grant.scope)
        return EndpointResponse(200, body, NO_STORE)

    def decide_grant(self, client: Client, request: OAuthRequest) -> Grant:
        try:
            requested = parse_scope(request.form.get("scope"))
        except ValueError as exc:
            raise InvalidScope(str(exc)) from None
        if requested:
            outside = [s for s in requested if s not in client.scope]
            if outside:
                raise InvalidScope(
                    "requested scope is not allowed for this client", detail=f"not allowed: {' '.join(outside)}"
                )
            scope = requested
        else:
            scope = client.scope
        targets = list(request.resources)
        if "audience" in request.form:
            targets.append(request.form["audience"])
        if targets:
            unknown = [t for t in targets if t not in client.audience]
            if unknown:
                raise InvalidTarget(
                    "requested audience/resource is not allowed for this client",
                    detail=f"not allowed: {', '.join(unknown)[:200]}",
                )
            audience = tuple(dict.fromkeys(targets))
        else:
            audience = client.audience or (self.settings.audience_default,)
        now = int(self.clock.now())
        # The maximum also bounds the server default and clients registered before it was lowered.
        ttl = min(client.access_token_ttl or self.settings.access_token_ttl, self.settings.max_access_token_ttl)
        return Grant(client=client, scope=scope, audience=audience, issued_at=now, expires_at=now + ttl)

    # --- introspection (RFC 7662) ------------------------------------------------------------

    async def introspect(self, request: OAuthRequest) -> EndpointResponse:
        return await self._guard("introspect", self._introspect, request)

    async def _introspect(self, request: OAuthRequest) -> EndpointResponse:
        caller = await self.authenticator.authenticate(request)
        if self.settings.introspection_requires_scope and INTROSPECT_SCOPE not in caller.scope:
            raise UnauthorizedClient(
                f"this client may not introspect tokens (it needs scope {INTROSPECT_SCOPE})", status=403
            )
        token = request.form.get("token")
        if not token:
            raise InvalidRequest("token is required")
        found = await self.find_active(token)
        if found is None:
            self.events.introspected(False)
            return _INACTIVE
        record, client = found
        self.events.introspected(True)
        return EndpointResponse(200, self.introspection_body(record, client), NO_STORE)

    def introspection_body(self, record: TokenRecord, client: Client) -> dict[str, Any]:
        body: dict[str, Any] = dict(
            active=True,
            scope=" ".join(record.scope),
            client_id=record.client_id,
            sub=record.client_id,
            aud=record.audience[0] if len(record.audience) == 1 else list(record.audience),
            iss=self.settings.issuer,
            exp=record.expires_at,
            iat=record.issued_at,
            token_type="Bearer",
        )
        body.update(client.metadata)  # registered claim names were refused at registration
        return body

    async def lookup(self, token: str) -> TokenRecord | None:
        """The stored record of a token of any format, active or not."""
        if len(token) > _MAX_TOKEN_LENGTH:
            return None
        for token_format in self.formats.values():
            if token_format.recognises(token):
                return await token_format.lookup(token)
        return None

    async def find_active(self, token: str) -> tuple[TokenRecord, Client] | None:
        cache = self.introspection_cache
        if cache.enabled and len(token) <= _MAX_TOKEN_LENGTH:
            key = digest(token)
            record = cache.get(key)
            if record is None:
                generation = cache.generation
                record = await self.lookup(token)
                if record is not None:
                    cache.put(key, record, generation)
        else:
            record = await self.lookup(token)
        if record is None or not record.active(self.clock.now()):
            return None
        # Revocation is in the record itself (opaque rows, the JWT deny list), read from the database or
        # from a cache that every revocation reaches (IntrospectionCache); the client may come from its cache.
        client = await self.clients.get(record.client_id)
        if client is None or client.disabled:
            return None
        return record, client

    def client_changed(self, client_id: str) -> None:
        """This process changed a client (or revoked all of its tokens): its caches forget it at once."""
        self.clients.invalidate(client_id)
        self.introspection_cache.forget_client(client_id)

    # --- revocation (RFC 7009) ---------------------------------------------------------------

    async def revoke(self, request: OAuthRequest) -> EndpointResponse:
        return await self._guard("revoke", self._revoke, request)

    async def _revoke(self, request: OAuthRequest) -> EndpointResponse:
        caller = await self.authenticator.authenticate(request)
        token = request.form.get("token")
        if not token:
            raise InvalidRequest("token is required")
        # Unknown tokens and other clients' tokens get the same 200 (RFC 7009 §2.2): no oracle.
        await self.revoke_token(token, caller.client_id)
        return EndpointResponse(200, None, NO_STORE)

    async def revoke_token(self, token: str, client_id: str | None) -> bool:
        if len(token) > _MAX_TOKEN_LENGTH:
            return False
        now = int(self.clock.now())
        for token_format in self.formats.values():
            if token_format.recognises(token):
                try:
                    return await token_format.revoke(token, client_id, now)
                finally:  # even when the outcome is unknown (the database went away mid-commit)
                    self.introspection_cache.forget(digest(token))
        return False

    # --- discovery (RFC 8414) ----------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        issuer = self.settings.issuer
        methods, algs = list(METHODS), list(ASSERTION_ALGS)
        return {
            "issuer": issuer,
            "token_endpoint": f"{issuer}/oauth/token",
            "introspection_endpoint": f"{issuer}/oauth/introspect",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "jwks_uri": f"{issuer}/oauth/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": methods,
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "introspection_endpoint_auth_methods_supported": methods,
            "introspection_endpoint_auth_signing_alg_values_supported": algs,
            "revocation_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_signing_alg_values_supported": algs,
        }

    # -----------------------------------------------------------------------------------------

    async def _guard(
        self, endpoint: str, handler: Callable[[OAuthRequest], Awaitable[EndpointResponse]], request: OAuthRequest
    ) -> EndpointResponse:
        try:
            return await handler(request)
        except OAuthError as exc:
            self.events.request_refused(endpoint, exc.error, exc.detail)
            return error_response(exc)
