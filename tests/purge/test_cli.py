"""`m2m-auth purge` and `m2m-auth stats` on the database directly, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .._pg import free_port
from ._db import migrated, plant_tokens, scalar

CLI = Path(sys.executable).parent / "m2m-auth"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}
    return subprocess.run([str(CLI), *args], check=False, env=environ, capture_output=True, text=True, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *mentions: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    message = result.stderr.strip()
    assert result.stdout == "" and "\n" not in message and message.startswith("m2m-auth: "), result.stderr
    for text in mentions:
        assert text in message, message


def test_stats_counts_live_and_expired_tokens_sizes_and_the_busiest_client_then_purge_removes_the_expired(
    backend: str, database_factory: Callable[[str], str]
) -> None:
    url = migrated(database_factory(backend))
    now = int(time.time())
    plant_tokens(url, "chatty", [now + 600] * 40 + [now - 5] * 7)
    plant_tokens(url, "calm", [now + 600] * 2)

    stats = run("stats", "--database-url", url, "--json")
    assert stats.returncode == 0, stats.stderr
    data = json.loads(stats.stdout)
    assert (data["live_tokens"], data["expired_tokens"]) == (42, 7)
    assert data["tables"]["tokens"]["rows"] == 49 and data["tables"]["tokens"]["expired_rows"] == 7
    assert data["tables"]["tokens"]["bytes"] > 0 and data["database_bytes"] > 0
    assert [c["client_id"] for c in data["issued"]["clients"]] == ["chatty", "calm"]
    assert data["issued"]["clients"][0]["tokens"] == 47

    purge = run("purge", "--database-url", url, "--json", "--batch-size", "3")
    assert purge.returncode == 0, purge.stderr
    assert json.loads(purge.stdout)["removed"]["tokens"] == 7
    assert scalar(url, "SELECT count(*) FROM tokens") == 42

    table = run("stats", "--database-url", url)
    assert table.returncode == 0, table.stderr
    assert "live tokens     42" in table.stdout and "expired tokens  0" in table.stdout
    assert "chatty" in table.stdout
    again = run("purge", "--database-url", url)
    assert again.returncode == 0 and "total            0 rows" in again.stdout, again.stdout


def test_purge_and_stats_fail_with_one_line_and_the_documented_exit_codes(tmp_path: Path) -> None:
    unreachable = f"postgresql://m2m:hunter2@127.0.0.1:{free_port()}/nothing"
    for command in ("purge", "stats"):
        result = run(command, "--database-url", unreachable)
        assert_one_line_error(result, 3, "127.0.0.1")
        assert "hunter2" not in result.stderr
        assert_one_line_error(run(command, "--database-url", f"sqlite:///{tmp_path}/new.db"), 2, "m2m-auth migrate")
        assert_one_line_error(run(command, "--database-url", "mysql://db/x"), 2, "unsupported")
