"""Alembic migrations, shipped in the package so `m2m-auth migrate` works from a wheel."""
