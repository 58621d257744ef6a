"""`m2m-auth migrate --check [--wait S]`: what a Kubernetes init container runs to wait for the migration Job.

The real executable on real SQLite files and on a closed PostgreSQL port; the waiting is bounded by the
command's own `--wait`, never by a timing assertion here.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from .._pg import PostgresCluster, free_port

CLI = Path(sys.executable).parent / "m2m-auth"
EXIT_OK, EXIT_BEHIND, EXIT_UNREACHABLE = 0, 1, 3


def environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], check=False, env=environ(), capture_output=True, text=True, timeout=60)


def test_check_exits_1_on_an_unmigrated_database_changing_nothing_and_0_once_migrated(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    url = f"sqlite:///{path}"

    behind = run("migrate", "--check", "--database-url", url)

    assert behind.returncode == EXIT_BEHIND, behind.stderr
    assert behind.stdout == ""
    assert behind.stderr.count("\n") == 1 and "Traceback" not in behind.stderr
    assert "schema none" in behind.stderr and "run `m2m-auth migrate`" in behind.stderr
    with sqlite3.connect(path) as conn:  # --check created no table
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] == 0

    migrated = run("migrate", "--database-url", url)
    assert migrated.returncode == EXIT_OK, migrated.stderr
    current = run("migrate", "--check", "--database-url", url)

    assert current.returncode == EXIT_OK, current.stderr
    assert current.stdout == migrated.stdout  # "<url> is at schema revision <head>"


def test_check_with_wait_returns_once_another_process_has_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    waiting = subprocess.Popen(
        [str(CLI), "migrate", "--check", "--wait", "120", "--database-url", url],
        env=environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # The migration Job's part, while the init container's part waits.
        assert run("migrate", "--database-url", url).returncode == EXIT_OK
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
        waiting.wait()

    assert waiting.returncode == EXIT_OK, err
    assert "is at schema revision" in out
    assert "Traceback" not in err


def test_wait_gives_up_on_an_unreachable_database_with_exit_3_and_no_password() -> None:
    url = f"postgresql://m2m:hunter2-password@127.0.0.1:{free_port()}/m2m"

    result = run("migrate", "--wait", "1", "--database-url", url)

    assert result.returncode == EXIT_UNREACHABLE
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("m2m-auth: waiting up to")  # said once, however many attempts
    assert lines[-1].startswith("m2m-auth: cannot reach the database postgresql://m2m:***@127.0.0.1")
    assert len(lines) == 2 and "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_serve_and_migrate_report_a_database_error_in_one_line(pg_cluster: PostgresCluster) -> None:
    # A reachable server refusing the database: SQLAlchemy's message has its link on a second line.
    url = pg_cluster.url("no_such_database")
    for args in (("serve", "--port", str(free_port())), ("migrate", "--check")):
        result = subprocess.run(
            [str(CLI), *args],
            check=False,
            env={**environ(), "M2M_AUTH_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == EXIT_UNREACHABLE, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "no_such_database" in result.stderr and "Traceback" not in result.stderr
