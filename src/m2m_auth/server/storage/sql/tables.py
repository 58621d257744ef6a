"""The one schema both dialects share; Alembic's target metadata."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "metadata",
    "clients",
    "client_secrets",
    "tokens",
    "server_state",
    "signing_keys",
    "revoked_jtis",
    "used_assertions",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("client_name", String(200), nullable=False),
    Column("scope", Text, nullable=False, default=""),
    Column("audience", JSON, nullable=False),
    Column("grant_types", JSON, nullable=False),
    Column("token_endpoint_auth_method", String(32), nullable=False),
    Column("access_token_format", String(16), nullable=True),
    Column("access_token_ttl", Integer, nullable=True),
    Column("metadata", JSON, nullable=False),
    Column("jwks", JSON, nullable=True),
    Column("jwks_uri", Text, nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    # JWTs are not stored: revoking all of a client's tokens revokes every JWT issued at or before this time.
    Column("tokens_revoked_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

client_secrets = Table(
    "client_secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(128), ForeignKey("clients.client_id", ondelete="CASCADE"), nullable=False),
    Column("digest", LargeBinary(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Index(None, "client_id"),
)

# One row per opaque token, keyed by the token's SHA-256: a lookup is one primary-key read.
tokens = Table(
    "tokens",
    metadata,
    Column("digest", LargeBinary(32), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("scope", Text, nullable=False),
    Column("audience", JSON, nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index(None, "client_id"),
    Index(None, "expires_at"),
)

server_state = Table(
    "server_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Signing keys for JWT access tokens. `generation` orders them and is unique, so replicas that
# create the next key at the same moment agree on one; the private JWK is encrypted at rest.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("generation", Integer, nullable=False, unique=True),
    Column("alg", String(16), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("private_jwk", LargeBinary, nullable=False),
    Column("encryption", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("activates_at", BigInteger, nullable=False),
)

# The deny list of revoked JWT access tokens, kept until the token would have expired anyway.
revoked_jtis = Table(
    "revoked_jtis",
    metadata,
    Column("jti", String(128), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("revoked_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index(None, "expires_at"),
)

# private_key_jwt assertions already used (RFC 7523 §3: jti single use), until they expire.
used_assertions = Table(
    "used_assertions",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
    Index(None, "expires_at"),
)
