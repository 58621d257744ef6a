"""JWT access tokens: signing keys, the jti deny list, used client assertions, per-client revocation time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("tokens_revoked_at", sa.BigInteger, nullable=True))
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.JSON, nullable=False),
        sa.Column("private_jwk", sa.LargeBinary, nullable=False),
        sa.Column("encryption", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("activates_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
        sa.UniqueConstraint("generation", name="uq_signing_keys_generation"),
    )
    op.create_table(
        "revoked_jtis",
        sa.Column("jti", sa.String(128), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_revoked_jtis"),
    )
    op.create_index("ix_revoked_jtis_expires_at", "revoked_jtis", ["expires_at"])
    op.create_table(
        "used_assertions",
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("jti", sa.String(256), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti", name="pk_used_assertions"),
    )
    op.create_index("ix_used_assertions_expires_at", "used_assertions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_used_assertions_expires_at", table_name="used_assertions")
    op.drop_table("used_assertions")
    op.drop_index("ix_revoked_jtis_expires_at", table_name="revoked_jtis")
    op.drop_table("revoked_jtis")
    op.drop_table("signing_keys")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("tokens_revoked_at")
