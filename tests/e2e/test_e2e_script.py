"""scripts/e2e_local.sh, the local twin of the seeds' KIND script, passes: CI runs it through this test.

It starts PostgreSQL, the server and the example resource servers (Python by introspection and by JWT, Node by
introspection), each in a network namespace of its own where the machine allows it, and checks 401/200/403 and
401 after revocation against each; Service A's SDK call must succeed too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .._pg import find_pg_bin

REPO = Path(__file__).resolve().parents[2]

CHECKS = [
    f"PASS  [{rs}] {check}"
    for rs in ("python", "node")
    for check in (
        "401 without a token -> 401",
        "401 with a bad token -> 401",
        "200 with a read token -> 200",
        "403 for a token without read -> 403",
        "403 for POST /things without admin:write -> 403",
        "401 after revocation",
    )
] + [
    "PASS  [jwt] 401 without a token -> 401",
    "PASS  [jwt] 200 with a JWT read token -> 200",
    "PASS  [jwt] 403 for POST /things without admin:write -> 403",
    "PASS  [jwt] 200 after revocation",
    "PASS  [service-a] call to",
    "e2e_local.sh: all checks passed",
]


def test_e2e_local_script_passes_every_check() -> None:
    missing = [tool for tool in ("node", "npm", "curl") if shutil.which(tool) is None]
    if find_pg_bin() is None:
        missing.append("PostgreSQL")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"scripts/e2e_local.sh needs {', '.join(missing)} (scripts/test.sh installs them)")
        pytest.skip(f"scripts/e2e_local.sh needs {', '.join(missing)}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("M2M_AUTH_", "RESOURCE_", "SERVICE_"))}
    result = subprocess.run(
        ["bash", "scripts/e2e_local.sh"], check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for check in CHECKS:
        assert check in result.stdout, f"missing {check!r} in:\n{output}"
    assert result.stdout.count("PASS  [service-a] call to") == 2, output
