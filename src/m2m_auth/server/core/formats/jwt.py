"""JWT access tokens (RFC 9068), signed with the server's current key; revocation by a jti deny list.

Verification never trusts the token's header for anything but `kid`: the key comes from our own
key set and the algorithm is pinned to that key's (RFC 8725 §3.1); `typ` must be `at+jwt`.
"""

from __future__ import annotations

import binascii
import secrets as _random
import warnings
from typing import Any, Protocol

import orjson
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64encode

from m2m_auth.server import secrets
from m2m_auth.server.core.models import Grant, IssuedToken, TokenRecord
from m2m_auth.server.storage.base import JtiStore

__all__ = ["JWTFormat", "Keys", "AT_JWT_TYPES"]

# Ed25519 keys sign as "EdDSA", which every validator knows; joserfc warns that RFC 9864 deprecates it.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

AT_JWT_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_MAX_LENGTH = 8192


class _Key(Protocol):
    @property
    def kid(self) -> str: ...

    @property
    def alg(self) -> str: ...

    @property
    def key(self) -> Any: ...


class Keys(Protocol):
    def signing_key(self) -> _Key: ...

    async def verification_key(self, kid: str) -> _Key | None: ...


class JWTFormat:
    name = "jwt"

    def __init__(self, keys: Keys, store: JtiStore, issuer: str) -> None:
        self._keys = keys
        self._store = store
        self._issuer = issuer
        self._registries: dict[str, JWSRegistry] = {}  # one per algorithm, each allowing only that one
        self._headers: dict[str, bytes] = {}  # encoded protected header by kid

    def _registry(self, alg: str) -> JWSRegistry:
        registry = self._registries.get(alg)
        if registry is None:
            registry = self._registries[alg] = JWSRegistry(algorithms=[alg])
        return registry

    def recognises(self, token: str) -> bool:
        return token.startswith("eyJ") and token.count(".") == 2 and len(token) <= _MAX_LENGTH

    async def issue(self, grant: Grant) -> IssuedToken:
        key = self._keys.signing_key()
        claims: dict[str, Any] = dict(grant.client.metadata)  # registered names were refused at registration
        claims.update(
            iss=self._issuer,
            sub=grant.client.client_id,
            client_id=grant.client.client_id,
            aud=grant.audience[0] if len(grant.audience) == 1 else list(grant.audience),
            exp=grant.expires_at,
            iat=grant.issued_at,
            nbf=grant.issued_at,
            jti=_random.token_urlsafe(16),
            scope=" ".join(grant.scope),
        )
        signing_input = self._header(key) + b"." + urlsafe_b64encode(orjson.dumps(claims))
        # joserfc's algorithm signs; serialize_compact would re-check a header we built ourselves on every token
        # (a sixth of an ES256 issuance).
        signature = self._registry(key.alg).get_alg(key.alg).sign(signing_input, key.key)
        token = (signing_input + b"." + urlsafe_b64encode(signature)).decode("ascii")
        return IssuedToken(token, grant.expires_at - grant.issued_at)

    def _header(self, key: _Key) -> bytes:
        encoded = self._headers.get(key.kid)
        if encoded is None:
            header = {"typ": "at+jwt", "alg": key.alg, "kid": key.kid}
            encoded = self._headers[key.kid] = urlsafe_b64encode(orjson.dumps(header))
        return encoded

    async def verified_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this server signed (signature, typ, iss and claim types checked), else None."""
        if not self.recognises(token):
            return None
        try:
            signed = jws.extract_compact(token.encode("ascii"))  # parsed once: header, payload, signature
            header = signed.headers()
        except (JoseError, ValueError, binascii.Error):
            return None
        kid = header.get("kid")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ not in AT_JWT_TYPES or not isinstance(kid, str) or len(kid) > 64:
            return None
        key = await self._keys.verification_key(kid)
        if key is None or header.get("alg") != key.alg:
            return None
        try:
            if not jws.validate_compact(signed, key.key, registry=self._registry(key.alg)):
                return None
            claims = orjson.loads(signed.payload or b"")
        except (JoseError, ValueError, binascii.Error):  # orjson.JSONDecodeError is a ValueError
            return None
        if not isinstance(claims, dict) or claims.get("iss") != self._issuer or not _well_formed(claims):
            return None
        return claims

    async def lookup(self, token: str) -> TokenRecord | None:
        claims = await self.verified_claims(token)
        if claims is None:
            return None
        audience = claims["aud"]
        return TokenRecord(
            digest=secrets.digest(token),
            client_id=claims["client_id"],
            scope=tuple(claims["scope"].split()),
            audience=(audience,) if isinstance(audience, str) else tuple(audience),
            issued_at=claims["iat"],
            expires_at=claims["exp"],
            revoked_at=await self._store.revoked_at(claims["jti"], claims["client_id"], claims["iat"]),
        )

    async def revoke(self, token: str, client_id: str | None, now: int) -> bool:
        claims = await self.verified_claims(token)
        if claims is None or (client_id is not None and claims["client_id"] != client_id) or claims["exp"] <= now:
            return False  # not ours, another client's, or expired: nothing to deny
        return await self._store.revoke_jti(
            claims["jti"], claims["client_id"], now, claims["exp"], secrets.digest(token)
        )


def _well_formed(claims: dict[str, Any]) -> bool:
    aud = claims.get("aud")
    return (
        all(isinstance(claims.get(name), str) and claims[name] for name in ("client_id", "jti"))
        and isinstance(claims.get("scope"), str)
        and all(type(claims.get(name)) is int for name in ("exp", "iat"))
        and (isinstance(aud, str) or (isinstance(aud, list) and bool(aud) and all(isinstance(a, str) for a in aud)))
    )
