"""private_key_jwt client authentication (RFC 7523 §2.2, §3; RFC 7521 §4.2).

The client signs a short-lived JWT with its private key; we verify it against the public keys
it registered (`jwks` or `jwks_uri`). Algorithms come from an allow-list and must match the
key's type: never `none`, never HMAC, never a key named by the token itself (jku, x5u, jwk).
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from typing import Any, Protocol

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from m2m_auth.errors import InvalidClient
from m2m_auth.server.core.clock import Clock
from m2m_auth.server.core.models import Client
from m2m_auth.server.storage.base import JtiStore

__all__ = [
    "JWT_BEARER",
    "ASSERTION_ALGS",
    "ClientKeys",
    "AssertionVerifier",
    "unverified_issuer",
    "assertion_audiences",
]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Ed25519 signatures are named "EdDSA" by most clients and "Ed25519" by RFC 9864 (joserfc 1.8): accept both.
_KEY_TYPE = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC", "EdDSA": "OKP", "Ed25519": "OKP"}
ASSERTION_ALGS = tuple(_KEY_TYPE)
_IMPORT: dict[str, Callable[[dict[str, Any]], RSAKey | ECKey | OKPKey]] = {
    "RSA": RSAKey.import_key,
    "EC": ECKey.import_key,
    "OKP": OKPKey.import_key,
}
_LEEWAY = 30


class ClientKeys(Protocol):
    async def keys_for(self, client: Client, kid: str | None) -> list[dict[str, Any]]:
        """The client's public JWKs (from `jwks`, or `jwks_uri` fetched and cached; refetched on an unknown kid)."""
        ...


def assertion_audiences(issuer: str) -> tuple[str, ...]:
    """What an assertion's `aud` may name: the issuer (draft-ietf-oauth-rfc7523bis) or the endpoint it is sent to."""
    return (issuer, f"{issuer}/", f"{issuer}/oauth/token", f"{issuer}/oauth/introspect", f"{issuer}/oauth/revoke")


def unverified_issuer(assertion: str) -> str | None:
    """The `iss` of an assertion, read before verification only to find the client whose keys verify it."""
    try:
        payload = json.loads(jws.extract_compact(assertion.encode("ascii")).payload)
    except (JoseError, ValueError, UnicodeError, binascii.Error):
        return None
    issuer = payload.get("iss") if isinstance(payload, dict) else None
    return issuer if isinstance(issuer, str) else None


class AssertionVerifier:
    def __init__(
        self, client_keys: ClientKeys, store: JtiStore, clock: Clock, audiences: tuple[str, ...], max_lifetime: int
    ) -> None:
        self._client_keys = client_keys
        self._store = store
        self._clock = clock
        self._audiences = frozenset(audiences)
        self._max_lifetime = max_lifetime

    async def verify(self, credentials: Any, client: Client, registry: Any) -> Client:
        assertion: str = credentials.secret
        try:
            header = jws.extract_compact(assertion.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError, binascii.Error):
            raise _refused("malformed client assertion") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in _KEY_TYPE:  # a JSON array or object is unhashable
            raise _refused(f"client assertion algorithm {str(alg)[:20]!r} is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _refused("malformed kid")
        claims = await self._verified_claims(assertion, client, alg, kid)
        now = self._clock.now()
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise _refused("client assertion iss and sub must both be the client_id")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if not self._audiences.intersection(a for a in audiences if isinstance(a, str)):
            raise _refused("client assertion aud must be this server's issuer or token endpoint")
        exp = claims.get("exp")
        if type(exp) is not int:
            raise _refused("client assertion has no exp")
        if exp <= now - _LEEWAY:
            raise _refused("client assertion expired")
        if exp > now + self._max_lifetime + _LEEWAY:
            raise _refused(f"client assertion exp is more than {self._max_lifetime} s ahead")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is not None and (type(value) not in (int, float) or value > now + _LEEWAY):
                raise _refused(f"client assertion {name} is in the future or malformed")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise _refused("client assertion has no usable jti")
        # Single use across replicas: the database refuses a second insert of the same jti.
        # Kept until the assertion can no longer be accepted (exp + leeway): purged any earlier, it could be replayed.
        if not await self._store.use_assertion(client.client_id, jti, exp + _LEEWAY):
            raise _refused("client assertion replayed (jti already used)")
        return client

    async def _verified_claims(self, assertion: str, client: Client, alg: str, kid: str | None) -> dict[str, Any]:
        key_type = _KEY_TYPE[alg]
        candidates = [
            jwk
            for jwk in await self._client_keys.keys_for(client, kid)
            if jwk.get("kty") == key_type
            and (kid is None or jwk.get("kid") == kid)
            and jwk.get("alg") in (None, alg, *(("EdDSA", "Ed25519") if key_type == "OKP" else ()))
            and jwk.get("use") in (None, "sig")
        ]
        if not candidates:
            raise _refused("no registered key of the client matches the assertion's kid and algorithm")
        for jwk in candidates:  # an assertion without kid is tried against each key of its type
            try:
                return jwt.decode(assertion, _IMPORT[key_type](jwk), algorithms=[alg]).claims
            except (JoseError, ValueError, binascii.Error):
                continue
        raise _refused("client assertion signature does not verify")


def _refused(detail: str) -> InvalidClient:
    return InvalidClient("client authentication failed", detail=detail)
