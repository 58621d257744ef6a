"""SQLAlchemy Core storage for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""
