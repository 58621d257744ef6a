"""Server settings: environment variables prefixed M2M_AUTH_, documented once, here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "DEFAULT_DATABASE_URL"]

DEFAULT_DATABASE_URL = "sqlite:///m2m-auth.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="M2M_AUTH_", extra="ignore")

    issuer: str = Field(
        "http://127.0.0.1:8000",
        description="Public base URL of this server; the `iss` of every token and the base of every advertised endpoint.",
    )
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="`sqlite:///path/file.db` (embedded default) or `postgresql://user:pass@host:port/db`.",
    )
    database_direct_url: str | None = Field(
        None,
        description="PostgreSQL only: a URL that reaches the database directly when `database_url` goes through a "
        "transaction-mode pooler (PgBouncer). Session-level features use it: the purge's advisory lock and the "
        "LISTEN connection that carries cache invalidations between replicas. Unset: `database_url`.",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bootstrap admin bearer token. Unset: the server generates one on first start, "
        "prints it once and stores only its SHA-256 digest.",
    )
    default_audience: str | None = Field(
        None, description="Audience of tokens for clients registered without one (default: the issuer)."
    )
    access_token_ttl: int = Field(600, ge=1, le=366 * 86400, description="Default access-token lifetime in seconds.")
    max_access_token_ttl: int = Field(
        86400, ge=1, le=366 * 86400, description="Largest `access_token_ttl` a client may be given (at most a year)."
    )
    access_token_format: Literal["opaque", "jwt"] = Field(
        "opaque",
        description="Token format for clients that do not choose one: `opaque` (introspected) or `jwt` (RFC 9068).",
    )
    signing_alg: Literal["RS256", "ES256", "EdDSA"] = Field(
        "RS256", description="Algorithm of newly generated signing keys for JWT access tokens."
    )
    key_encryption_key: SecretStr | None = Field(
        None,
        description="32 random bytes, base64url: encrypts signing keys at rest (AES-256-GCM). "
        "Unset: keys are stored unencrypted, with a loud warning; refused in production mode. "
        "`m2m-auth keys generate-kek` makes one.",
    )
    key_encryption_key_previous: SecretStr | None = Field(
        None,
        description="Earlier key-encryption keys, comma-separated, for changing `M2M_AUTH_KEY_ENCRYPTION_KEY`: "
        "they still open the signing keys they sealed, which are resealed with the current key at start-up "
        "(or by `m2m-auth keys reseal`). Remove them once every replica runs with the new key.",
    )
    production: bool = Field(False, description="Refuse unsafe configurations (no key-encryption key) at start-up.")
    key_rotation_interval: float = Field(
        0, ge=0, description="Seconds between scheduled signing-key rotations (0: rotate only when asked)."
    )
    key_prepublish: float = Field(
        3600,
        ge=0,
        description="Seconds a scheduled new key is published in the JWKS before it signs; longer than the JWKS max-age.",
    )
    jwks_max_age: int = Field(300, ge=0, description="`Cache-Control: max-age` of the JWKS, in seconds.")
    key_refresh_interval: float = Field(
        5,
        gt=0,
        description="Seconds between reloads of the signing keys from the database (replicas agree through it).",
    )
    max_assertion_lifetime: int = Field(
        3600, ge=1, description="How far ahead a private_key_jwt client assertion's `exp` may be, in seconds."
    )
    jwks_uri_timeout: float = Field(5.0, gt=0, description="Timeout for fetching a client's `jwks_uri`.")
    jwks_uri_cache_ttl: float = Field(600, ge=0, description="Seconds a client's fetched `jwks_uri` is cached.")
    token_prefix: str = Field(
        "m2m_at_",
        pattern=r"^[A-Za-z0-9_]{0,16}$",
        description="Prefix of opaque access tokens, so that secret scanners recognise leaked ones.",
    )
    introspection_requires_scope: bool = Field(
        False,
        description="Only clients allowed scope `m2m-auth:introspect` may call the introspection endpoint.",
    )
    secret_grace_period: int = Field(
        3600, ge=0, description="Seconds a rotated client secret keeps working when the request names no grace period."
    )
    client_cache_ttl: float = Field(
        5.0,
        ge=0,
        description="Seconds a client record is cached in each process. Changes apply at once in the process that "
        "made them and, on PostgreSQL, in every other replica through LISTEN/NOTIFY; the TTL bounds staleness only "
        "while a replica's notification connection is down, or between `--workers` on SQLite.",
    )
    introspection_cache_size: int = Field(
        50_000,
        ge=0,
        description="Active tokens whose introspection answer each process keeps (0: none). PostgreSQL only, and "
        "only while the process's notification connection is up: a revocation reaches every replica's cache through "
        "LISTEN/NOTIFY and is answered once its notification came back.",
    )
    introspection_cache_ttl: float = Field(
        60.0,
        gt=0,
        description="Seconds an introspection answer is kept at most (a token's expiry still applies at once).",
    )
    max_body_size: int = Field(65536, ge=1024, description="Largest request body accepted, in bytes (413 above).")
    db_pool_size: int = Field(10, ge=1, description="Connections per process to PostgreSQL.")
    db_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for a database connection or statement before answering 503."
    )
    db_prepared_statements: bool = Field(
        True,
        description="Use asyncpg's prepared-statement cache. Turn off behind PgBouncer in transaction mode (< 1.21).",
    )
    purge_enabled: bool = Field(
        True,
        description="Delete rows of expired tokens, JWT deny-list entries, used assertions and retired client "
        "secrets in the background (one replica at a time; `m2m-auth purge` runs it once).",
    )
    purge_interval: float = Field(
        60.0, ge=0.1, le=86400, description="Seconds between purge rounds (a round ends when nothing expired is left)."
    )
    purge_batch_size: int = Field(
        1000, ge=1, le=100_000, description="Rows deleted per purge transaction; smaller batches hold locks shorter."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Level of the server's log: `debug`, `info`, `warning` or `error`."
    )

    @field_validator("issuer")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("issuer must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 24:
            raise ValueError("the admin token must be at least 24 characters (use a long random value)")
        return value

    @model_validator(mode="after")
    def _windows_fit(self) -> Settings:
        if self.key_rotation_interval and self.key_prepublish <= self.jwks_max_age:
            raise ValueError("key_prepublish must be longer than jwks_max_age, or validators miss the new key")
        return self

    @property
    def audience_default(self) -> str:
        return self.default_audience or self.issuer


def settings_reference() -> str:
    """The configuration reference in Markdown, generated from the fields (docs/configuration.md)."""
    lines = [
        "# Configuration",
        "",
        "Generated from `m2m_auth.server.settings.Settings` by `m2m-auth settings`;",
        "a test keeps this file in step with the code. `m2m-auth serve` flags override the environment.",
        "",
        "| variable | default | meaning |",
        "| --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(unset)" if default is None else f"`{str(default).lower() if isinstance(default, bool) else default}`"
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `M2M_AUTH_{name.upper()}` | {shown} | {description} |")
    return "\n".join(lines) + "\n"
