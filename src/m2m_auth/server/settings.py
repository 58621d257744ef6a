"""Server settings: environment variables prefixed M2M_AUTH_, documented once, here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
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
    access_token_format: Literal["opaque"] = Field(
        "opaque", description="Token format for clients that do not choose one."
    )
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
        5.0, ge=0, description="Seconds a client record is cached in each process (changes made here apply at once)."
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
