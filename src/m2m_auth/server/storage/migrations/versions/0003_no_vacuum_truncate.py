"""PostgreSQL: vacuum does not truncate the tables the purge empties from the front.

Truncating a table's empty tail takes an ACCESS EXCLUSIVE lock, which stalls every insert and
lookup on it while it waits and works; these tables refill within seconds anyway.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLES = ("tokens", "revoked_jtis", "used_assertions")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"ALTER TABLE {table} SET (vacuum_truncate = false)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"ALTER TABLE {table} RESET (vacuum_truncate)")
