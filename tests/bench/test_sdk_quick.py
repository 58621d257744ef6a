"""The SDK benchmark (bench/sdk.py) in its quick mode, end to end: it completes and reports every figure.

People run the full benchmark and read the ratios (bench/RESULTS.md); CI checks only that the harness works
(real `m2m-auth serve`, pyperf workers, the example resource server under uvicorn driven by wrk), never a speed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _sdk_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sdk", ROOT / "bench" / "sdk.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_quick_sdk_benchmark_reports_every_figure_ratio_and_verdict(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk not found; the test command installs it (scripts/test.sh)")
        pytest.skip("wrk not found (run scripts/test.sh to install it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("M2M_AUTH_", "RESOURCE_"))}
    out = tmp_path / "sdk.json"
    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sdk.py"), "--quick", "--json", str(out), "--results", str(results)],
        check=False, capture_output=True, text=True, timeout=180, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert not results.exists()  # a quick run measures too little to be published

    data = json.loads(out.read_text())
    sdk = _sdk_module()
    assert set(data["micro"]) == {key for key, _ in sdk.BENCHES}
    for entry in data["micro"].values():
        assert math.isfinite(entry["ops_per_s"]) and entry["ops_per_s"] > 0, entry
    assert set(data["http"]) == {"introspection", "jwt"}
    for pair in data["http"].values():
        for route in ("protected", "open"):
            assert pair[route]["rps"] > 0
            assert pair[route]["bad"] == 0  # every answer was the expected 200 with the route's body
    names = [t["target"] for t in data["targets"]]
    assert len(names) == 6 and len(set(names)) == 6
    for target in data["targets"]:
        assert isinstance(target["met"], bool) and target["ratio"] > 0 and target["need"] > 0

    markdown = sdk.markdown(data)
    for entry in data["micro"].values():
        assert entry["name"] in markdown
    assert markdown.count("| GET /protected (") == 2 and "| target | measured | ratio | need | verdict |" in markdown
