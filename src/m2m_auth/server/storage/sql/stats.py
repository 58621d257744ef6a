"""What the storage holds, for `m2m-auth stats`: live and expired rows, table sizes, who issues most."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from m2m_auth.server.storage.sql.purge import PURGEABLE
from m2m_auth.server.storage.sql.tables import metadata, tokens

__all__ = ["storage_stats"]


async def storage_stats(engine: AsyncEngine, now: int, *, window: int = 300, top: int = 10) -> dict[str, Any]:
    """Counts are exact (COUNT(*)): meant for an operator's occasional look, not for a scrape loop.

    `issued` counts the tokens issued in the last `window` seconds that are still stored: a client
    that fetches a new token for every call stands out at the top. Tokens already purged (a TTL
    shorter than the window) are not counted.
    """
    expiry = {table.name: column for table, column in PURGEABLE}
    async with engine.connect() as conn:
        live = int(await conn.scalar(select(func.count()).where(tokens.c.expires_at > now)) or 0)
        total = int(await conn.scalar(select(func.count()).select_from(tokens)) or 0)
        sizes = await _table_bytes(conn)
        tables: dict[str, dict[str, int | None]] = {}
        for table in metadata.sorted_tables:
            rows = int(await conn.scalar(select(func.count()).select_from(table)) or 0)
            expired = None
            if table.name in expiry:
                expired = int(await conn.scalar(select(func.count()).where(expiry[table.name] <= now)) or 0)
            tables[table.name] = {"rows": rows, "expired_rows": expired, "bytes": sizes.get(table.name)}
        since = now - window
        busiest = (
            await conn.execute(
                select(tokens.c.client_id, func.count().label("issued"))
                # expires_at > since follows from issued_at >= since and lets the expiry index narrow the scan
                .where(tokens.c.expires_at > since, tokens.c.issued_at >= since)
                .group_by(tokens.c.client_id)
                .order_by(func.count().desc(), tokens.c.client_id)
                .limit(top)
            )
        ).all()
        database_bytes = await _database_bytes(conn)
    return {
        "live_tokens": live,
        "expired_tokens": total - live,
        "tables": tables,
        "database_bytes": database_bytes,
        "issued": {
            "window_seconds": window,
            "clients": [
                {
                    "client_id": row.client_id,
                    "tokens": int(row.issued),
                    "per_minute": round(row.issued * 60 / window, 1),
                }
                for row in busiest
            ],
        },
    }


async def _table_bytes(conn: AsyncConnection) -> dict[str, int]:
    """On-disk bytes per table, its indexes included (PostgreSQL: also TOAST)."""
    names = [table.name for table in metadata.sorted_tables]
    if conn.dialect.name == "postgresql":
        sizes = {}
        for name in names:
            size = await conn.scalar(text("SELECT pg_total_relation_size(to_regclass(:name))"), {"name": name})
            if size is not None:
                sizes[name] = int(size)
        return sizes
    try:  # dbstat is a compile-time option of SQLite; without it only the whole file's size is known
        rows = (
            await conn.execute(
                text(
                    "SELECT m.tbl_name AS name, SUM(d.pgsize) AS size FROM dbstat AS d"
                    " JOIN sqlite_master AS m ON m.name = d.name GROUP BY m.tbl_name"
                )
            )
        ).all()
    except DBAPIError:
        await conn.rollback()
        return {}
    return {row.name: int(row.size) for row in rows if row.name in names}


async def _database_bytes(conn: AsyncConnection) -> int:
    if conn.dialect.name == "postgresql":
        return int(await conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)
    page_count = int(await conn.scalar(text("PRAGMA page_count")) or 0)
    page_size = int(await conn.scalar(text("PRAGMA page_size")) or 0)
    return page_count * page_size
