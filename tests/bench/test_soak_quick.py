"""The soak benchmark (bench/soak.py) in its quick mode, end to end: it completes and writes its results.

People run the full ten minutes and read the ratios (bench/RESULTS.md); CI checks only that the
benchmark works, never a speed: the run issues tokens through the real API on a real PostgreSQL,
the server purges, and the table stays far below the number of tokens issued.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .._pg import find_pg_bin

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_soak_completes_and_writes_its_numbers_and_chart(tmp_path: Path) -> None:
    if find_pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries not found; the test command installs them (scripts/test.sh)")
        pytest.skip("PostgreSQL binaries not found (run scripts/test.sh to install them)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--quick", "--out", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr

    data = json.loads((tmp_path / "soak.json").read_text())
    assert data["load"]["requests_ok"] > 0
    assert len(data["samples"]) >= 10
    assert data["purge_rounds"]["rows_deleted"] > 0
    assert data["rows"]["peak_after_warmup"] < data["load"]["requests_ok"] / 2  # storage bounded, not growing
    for key in ("rows", "disk", "latency"):
        assert "target_met" in data[key]
    assert "| target | measured | ratio | verdict |" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "soak.csv").read_text().startswith("t,rows,")
    assert (tmp_path / "soak.png").exists() == (importlib.util.find_spec("matplotlib") is not None)
