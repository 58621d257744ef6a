"""Client metadata in and out of the admin API; every problem is `invalid_client_metadata`."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from m2m_auth.errors import InvalidClientMetadata, InvalidRequest
from m2m_auth.scopes import parse_scope
from m2m_auth.server.core.claims import REGISTERED_CLAIMS
from m2m_auth.server.core.models import CLIENT_ID_PATTERN, Client

__all__ = [
    "ClientCreate",
    "ClientUpdate",
    "SecretRotation",
    "KeyRotation",
    "TokenQuery",
    "parse_model",
    "client_json",
    "check_key_material",
]

_MAX_METADATA_BYTES = 4096

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
TokenFormatName = Literal["opaque", "jwt"]
_KEY_TYPES: dict[str, type[RSAKey] | type[ECKey] | type[OKPKey]] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
Audience = Annotated[StrictStr, Field(min_length=1, max_length=512)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _ClientFields(_Strict):
    @field_validator("scope", check_fields=False)
    @classmethod
    def _scope(cls, value: str | None) -> str | None:
        if value is not None:
            parse_scope(value)  # ValueError names the bad token
        return value

    @field_validator("client_name", check_fields=False)
    @classmethod
    def _client_name(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:  # PostgreSQL text cannot hold NUL
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("audience", check_fields=False)
    @classmethod
    def _audience(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(a != a.strip() or not a.isprintable() for a in value):
            raise ValueError("audiences must be printable, not empty and not padded with spaces")
        return value

    @field_validator("jwks", check_fields=False)
    @classmethod
    def _jwks(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        keys = value.get("keys")
        if set(value) != {"keys"} or not isinstance(keys, list) or not 1 <= len(keys) <= 10:
            raise ValueError('must be a JWK set: {"keys": [...]} with 1 to 10 public keys')
        kids = [k.get("kid") for k in keys if isinstance(k, dict) and "kid" in k]
        if len(kids) != len(set(kids)):
            raise ValueError("key ids (kid) must be unique")
        for jwk in keys:
            if not isinstance(jwk, dict) or jwk.get("kty") not in _KEY_TYPES:
                raise ValueError("each key must be an RSA, EC or OKP JWK")
            if _PRIVATE_MEMBERS.intersection(jwk):
                raise ValueError("a key holds private members: register public keys only")
            try:
                _KEY_TYPES[jwk["kty"]].import_key(jwk)
            except (JoseError, ValueError, TypeError):
                raise ValueError(f"a {jwk['kty']} key does not parse as a JWK") from None
        if len(json.dumps(value)) > 32768:
            raise ValueError("must serialise to at most 32 KiB")
        return value

    @field_validator("jwks_uri", check_fields=False)
    @classmethod
    def _jwks_uri(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
        if not secure or not parts.hostname or parts.fragment or len(value) > 2000:
            raise ValueError("must be an https URL (http only on loopback), without fragment")
        return value

    @field_validator("metadata", check_fields=False)
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        clashes = sorted(k for k in value if k in REGISTERED_CLAIMS)
        if clashes:
            raise ValueError(f"metadata keys {', '.join(clashes)} collide with registered claim names")
        if any(not k or len(k) > 64 for k in value):
            raise ValueError("metadata keys must be 1 to 64 characters")
        if len(json.dumps(value)) > _MAX_METADATA_BYTES:
            raise ValueError(f"metadata must serialise to at most {_MAX_METADATA_BYTES} bytes")
        return value


class ClientCreate(_ClientFields):
    client_name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    client_id: Annotated[StrictStr, Field(pattern=f"^{CLIENT_ID_PATTERN}$")] | None = None
    scope: StrictStr = ""
    audience: Annotated[list[Audience], Field(max_length=64)] = []
    grant_types: list[Literal["client_credentials"]] = ["client_credentials"]
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"
    access_token_format: TokenFormatName | None = None
    access_token_ttl: StrictInt | None = Field(None, ge=1)
    metadata: dict[str, Any] = {}
    jwks: dict[str, Any] | None = None
    jwks_uri: StrictStr | None = None

    @model_validator(mode="after")
    def _keys_fit_method(self) -> ClientCreate:
        check_key_material(self.token_endpoint_auth_method, self.jwks, self.jwks_uri, ValueError)
        return self


class ClientUpdate(_ClientFields):
    client_name: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = None
    scope: StrictStr | None = None
    audience: Annotated[list[Audience], Field(max_length=64)] | None = None
    token_endpoint_auth_method: AuthMethod | None = None
    access_token_format: TokenFormatName | None = None
    access_token_ttl: StrictInt | None = Field(None, ge=1)
    metadata: dict[str, Any] | None = None
    disabled: StrictBool | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: StrictStr | None = None


def check_key_material(method: str, jwks: Any, jwks_uri: Any, error: type[Exception]) -> None:
    """private_key_jwt needs exactly one of jwks and jwks_uri; secret methods use neither."""
    if method == "private_key_jwt":
        if (jwks is None) == (jwks_uri is None):
            raise error("private_key_jwt needs exactly one of jwks and jwks_uri")
    elif jwks is not None or jwks_uri is not None:
        raise error(f"jwks and jwks_uri are for private_key_jwt, not {method}")


class KeyRotation(_Strict):
    delay: StrictInt = Field(0, ge=0, le=30 * 86400)


class SecretRotation(_Strict):
    grace_period: StrictInt | None = Field(None, ge=0, le=30 * 86400)


class TokenQuery(_Strict):
    token: Annotated[StrictStr, Field(min_length=1, max_length=8192)]
    scope: StrictStr | None = None
    audience: StrictStr | None = None


def parse_model(model: type[_Strict], data: Any) -> Any:
    """Validate an admin body: client metadata errors are `invalid_client_metadata` (RFC 7591 §3.2.2)."""
    error = InvalidRequest if model is TokenQuery else InvalidClientMetadata
    if not isinstance(data, dict):
        raise error("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(_readable(exc)) from None


def _readable(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def client_json(client: Client) -> dict[str, Any]:
    body = {
        "client_id": client.client_id,
        "client_name": client.client_name,
        "scope": " ".join(client.scope),
        "audience": list(client.audience),
        "grant_types": list(client.grant_types),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "access_token_format": client.access_token_format,
        "access_token_ttl": client.access_token_ttl,
        "metadata": client.metadata,
        "disabled": client.disabled,
        "client_id_issued_at": client.created_at,
        "client_secret_expires_at": 0,
        "updated_at": client.updated_at,
    }
    if client.jwks is not None:
        body["jwks"] = client.jwks
    if client.jwks_uri is not None:
        body["jwks_uri"] = client.jwks_uri
    return body
