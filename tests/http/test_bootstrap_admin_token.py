"""A server started without M2M_AUTH_ADMIN_TOKEN generates its admin token once, prints it once,
stores only its SHA-256 digest, and `m2m-auth admin-token reset` replaces it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .._server import ADMIN_TOKEN, Api, ServerProcess

TOKEN = re.compile(r"m2m_admin_[A-Za-z0-9_-]{43}")
DIGEST_KEY = "admin_token_sha256"
CLI = Path(sys.executable).parent / "m2m-auth"


def server_state(database_url: str) -> dict[str, str]:
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return dict(conn.execute("SELECT key, value FROM server_state").fetchall())

    async def read() -> dict[str, str]:
        import asyncpg

        conn = await asyncpg.connect(database_url)
        try:
            return {r["key"]: r["value"] for r in await conn.fetch("SELECT key, value FROM server_state")}
        finally:
            await conn.close()

    return asyncio.run(read())


def printed_tokens(proc: ServerProcess) -> list[str]:
    return TOKEN.findall(proc.log())


def admin_status(proc: ServerProcess, token: str) -> int:
    api = Api(proc.url, admin_token=token)
    try:
        return api.admin("GET", "/admin/clients").status_code
    finally:
        api.close()


def test_a_server_without_an_admin_token_generates_one_prints_it_once_and_stores_its_digest(
    server_factory: Callable[..., ServerProcess],
) -> None:
    first = server_factory(admin_token=None)

    printed = printed_tokens(first)
    assert len(printed) == 1, first.log()
    token = printed[0]
    state = server_state(first.database_url)
    assert state[DIGEST_KEY] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in value and token.removeprefix("m2m_admin_") not in value for value in state.values())
    assert admin_status(first, token) == 200
    assert admin_status(first, "m2m_admin_" + "A" * 43) == 401
    assert admin_status(first, ADMIN_TOKEN) == 401  # the fixed test token means nothing to this server
    created = Api(first.url, admin_token=token)
    client = created.create_client(client_name="survives a restart")
    created.close()
    first.stop()

    restarted = server_factory(database_url=first.database_url, admin_token=None)

    assert printed_tokens(restarted) == [], restarted.log()
    assert server_state(restarted.database_url)[DIGEST_KEY] == state[DIGEST_KEY]
    assert admin_status(restarted, token) == 200
    again = Api(restarted.url, admin_token=token)
    assert again.admin("GET", f"/admin/clients/{client['client_id']}").status_code == 200
    again.close()


def test_admin_token_reset_prints_a_new_token_that_replaces_the_old_one_after_a_restart(
    server_factory: Callable[..., ServerProcess],
) -> None:
    first = server_factory(admin_token=None)
    (old,) = printed_tokens(first)
    first.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}

    reset = subprocess.run(
        [str(CLI), "admin-token", "reset", "--database-url", first.database_url],
        check=False, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert reset.returncode == 0, reset.stderr
    new = reset.stdout.strip()
    assert TOKEN.fullmatch(new), reset.stdout
    assert new != old and old not in reset.stdout + reset.stderr
    assert server_state(first.database_url)[DIGEST_KEY] == hashlib.sha256(new.encode()).hexdigest()

    restarted = server_factory(database_url=first.database_url, admin_token=None)
    assert printed_tokens(restarted) == [], restarted.log()
    assert admin_status(restarted, new) == 200
    assert admin_status(restarted, old) == 401


def test_an_admin_token_from_the_environment_is_neither_generated_nor_stored(
    server_factory: Callable[..., ServerProcess],
) -> None:
    proc = server_factory()  # the fixed test token is in M2M_AUTH_ADMIN_TOKEN
    assert printed_tokens(proc) == []
    assert DIGEST_KEY not in server_state(proc.database_url)
    assert admin_status(proc, ADMIN_TOKEN) == 200
