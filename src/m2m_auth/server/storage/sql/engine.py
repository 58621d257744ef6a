"""Database URLs and engines: plain URLs in, the right async driver and pool settings out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["async_url", "create_engine", "is_sqlite", "redact"]


def async_url(url: str) -> URL:
    """`sqlite:///f.db` -> sqlite+aiosqlite, `postgresql://` or `postgres://` -> postgresql+asyncpg."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql://")


def is_sqlite(url: str) -> bool:
    return async_url(url).get_backend_name() == "sqlite"


def redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is not echoed at all: it may hold a password
        return "<unparseable database URL>"


def create_engine(
    url: str, *, pool_size: int = 10, timeout: float = 5.0, prepared_statements: bool = True
) -> AsyncEngine:
    target = async_url(url)
    kwargs: dict[str, Any] = {}
    if target.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": timeout}
        engine = create_async_engine(target, **kwargs)
        _sqlite_pragmas(engine)
        return engine
    connect_args: dict[str, Any] = {"timeout": timeout, "command_timeout": timeout}
    if not prepared_statements:  # PgBouncer in transaction mode (< 1.21) cannot keep them
        connect_args["statement_cache_size"] = 0
        target = target.update_query_dict({"prepared_statement_cache_size": "0"})
    return create_async_engine(
        target,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=timeout,
        pool_recycle=1800,
        connect_args=connect_args,
    )


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer; NORMAL is durable across application crashes in WAL mode.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()
