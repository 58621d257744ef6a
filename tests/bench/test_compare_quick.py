"""The side-by-side benchmark (bench/compare.py) in its quick mode: every system starts, every workload answers.

People run the full comparison and read the ratios (bench/RESULTS.md); CI checks only that the
harness works, never a speed: m2m-auth on PostgreSQL and SQLite, node oidc-provider, django-oauth-toolkit
and the hello-world ceilings each start, and wrk's script found every answer right (status and body).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .._pg import find_pg_bin

ROOT = Path(__file__).resolve().parents[2]

MEASURED = {
    "m2m-auth, PostgreSQL": ["token-opaque", "token-rs256", "token-es256", "introspect-opaque", "introspect-jwt"],
    "m2m-auth, PostgreSQL, no introspection cache": ["introspect-opaque", "introspect-jwt"],
    "m2m-auth, SQLite": ["token-opaque", "token-rs256", "token-es256", "introspect-opaque", "introspect-jwt"],
    "oidc-provider, memory store": ["token-opaque", "token-rs256", "token-es256", "introspect-opaque"],
    "DOT, PBKDF2 secrets (default)": ["token-opaque", "introspect-opaque"],
    "DOT, plain secrets": ["token-opaque", "introspect-opaque"],
    "hello: Starlette": ["hello"],
    "hello: FastAPI": ["hello"],
    "hello: Koa (oidc-provider's)": ["hello"],
    "hello: Django (DOT's)": ["hello"],
}


def missing_tools() -> list[str]:
    missing = [tool for tool in ("wrk", "node", "taskset") if shutil.which(tool) is None]
    if find_pg_bin() is None:
        missing.append("PostgreSQL")
    if not (ROOT / "bench" / "peers" / "oidc-provider" / "node_modules" / "oidc-provider").exists():
        missing.append("bench/peers/oidc-provider/node_modules (npm ci)")
    missing += [m for m in ("oauth2_provider", "gunicorn") if importlib.util.find_spec(m) is None]
    return missing


def test_the_quick_comparison_starts_every_system_and_checks_every_answer(tmp_path: Path) -> None:
    if missing := missing_tools():
        message = f"missing {', '.join(missing)}: scripts/test.sh installs them"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compare.py"), "--quick", "--no-sdk", "--out", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    data = json.loads((tmp_path / "results.json").read_text())
    assert data["errors"] == []
    for row, workloads in MEASURED.items():
        for workload in workloads:
            measured = data["table"][row][workload]
            assert measured["failed"] is None, (row, workload, measured["failed"])
            assert measured["requests"] > 0
            assert all(run["bad"] == 0 and run["non_2xx"] == 0 for run in measured["runs"])
    # oidc-provider refuses to introspect its JWTs: the harness says so instead of timing the refusals.
    assert "introspect-jwt" in data["table"]["oidc-provider, memory store"]

    summary = (tmp_path / "summary.md").read_text()
    assert "| workload | system | req/s | p50 ms | p99 ms |" in summary
    assert "| target | measured | ratio | verdict |" in summary
    assert "**Quick mode**" in summary  # and so no target is enforced, and bench/RESULTS.md is left alone
    charts = importlib.util.find_spec("matplotlib") is not None
    assert (tmp_path / "compare-throughput.png").exists() == charts
    assert (tmp_path / "compare-latency.png").exists() == charts
