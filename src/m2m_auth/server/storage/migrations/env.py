"""Alembic environment: always handed a live connection by m2m_auth.server.storage.migrate."""

from alembic import context

from m2m_auth.server.storage.sql.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
