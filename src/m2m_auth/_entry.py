"""The `m2m-auth` console script: a bare SDK install says which extra the CLI needs."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    try:
        from m2m_auth.cli import app
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        sys.stderr.write(
            f"m2m-auth: the command line and server need the server extra (missing module: {missing}).\n"
            "Install it with:  pip install 'm2m-auth[server]'   (add [postgres] for PostgreSQL)\n"
        )
        raise SystemExit(2) from None
    app()
