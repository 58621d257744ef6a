"""The shell scripts: syntax and shellcheck for all of them, and what scripts/e2e_kind.sh does on a machine
that cannot run KIND (like CI's: no container engine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ._tools import E2E_KIND, ROOT, tool

SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))
BASH = shutil.which("bash") or "/bin/bash"


def test_the_scripts_folder_has_the_kind_script() -> None:
    assert E2E_KIND in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_bash_parses_the_script(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_shellcheck_finds_no_warning(script: Path) -> None:
    # Warnings and errors; the style and info notes (`a && b || c` and the like) are left to taste.
    result = subprocess.run(
        [str(tool("shellcheck")), "--severity=warning", "--external-sources", str(script)],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def run_kind_script(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [BASH, str(E2E_KIND), *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def test_help_describes_the_flags_and_what_is_checked() -> None:
    result = run_kind_script("--help")

    assert result.returncode == 0, result.stderr
    for words in ("--keep-cluster", "--keep-namespace", "401 without a token", "200 with a `read` token",
                  "401 after revocation", "deploy/k8s/overlays/kind"):  # fmt: skip
        assert words in result.stdout
    assert "set -" not in result.stdout  # the comment block only


def test_an_unknown_argument_is_a_usage_error() -> None:
    result = run_kind_script("--keep")

    assert result.returncode == 2
    assert "unknown argument --keep" in result.stderr and "--keep-cluster" in result.stderr


def bin_with(tmp_path: Path, *names: str) -> Path:
    """A PATH folder with the named real tools of this machine (what the script needs besides KIND's)."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name in names:
        found = shutil.which(name)
        assert found, name
        (folder / name).symlink_to(found)
    return folder


BASICS = ("dirname", "awk", "sed", "mktemp", "rm", "grep", "cat", "seq", "python3", "curl")


def test_without_kind_and_docker_it_says_what_is_missing_and_touches_nothing(tmp_path: Path) -> None:
    folder = bin_with(tmp_path, *[b for b in BASICS if shutil.which(b)])

    result = run_kind_script(path=str(folder))

    assert result.returncode == 1
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("e2e_kind.sh: FAILED")]
    assert "prerequisites" in line and "not installed: docker kind kubectl" in line
    assert "bash scripts/e2e_local.sh" in line  # what to run instead
    assert "==> KIND cluster" not in result.stdout


def test_with_docker_but_no_running_engine_it_stops_before_creating_a_cluster(tmp_path: Path) -> None:
    folder = bin_with(tmp_path, *[b for b in BASICS if shutil.which(b)])
    # Stand-ins for what cannot run here: a docker whose engine does not answer, and a kind that records calls.
    calls = tmp_path / "calls"
    for name in ("docker", "kind", "kubectl"):
        (folder / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\nexit 1\n')
        (folder / name).chmod(0o755)

    result = run_kind_script(path=str(folder))

    assert result.returncode == 1
    assert "no container engine answers" in result.stderr
    assert calls.read_text().splitlines() == ["docker info"]  # no cluster created, no image built


def test_a_dry_run_against_a_stand_in_cluster_passes_every_check_and_cleans_up(tmp_path: Path) -> None:
    """The whole script against real server processes, with kind, docker and the cluster played by stand-ins.

    This is not a KIND run (none can happen here): it shows the script's own steps work, that the overlay it
    writes renders with the real kustomize, and that it leaves nothing running.
    """
    kubectl = tool("kubectl")
    state = tmp_path / "state"
    state.mkdir()
    stand_ins = tmp_path / "bin"
    shutil.copytree(Path(__file__).with_name("fake_cluster"), stand_ins)
    for name in ("kubectl", "kind", "docker"):
        (stand_ins / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("M2M_AUTH_", "RESOURCE_"))}
    env.update(
        PATH=f"{stand_ins}{os.pathsep}{env['PATH']}",
        FAKE_CLUSTER_STATE=str(state),
        FAKE_CLUSTER_BIN=str(kubectl.parent),
        FAKE_CLUSTER_RESOURCE_SERVER=str(ROOT / "examples" / "resource-server" / "app.py"),
        TMPDIR=str(tmp_path),
    )
    try:
        result = subprocess.run(
            [BASH, str(E2E_KIND)], capture_output=True, text=True, timeout=240, check=False, env=env
        )
    finally:
        for pid in (state / "pids").read_text().split() if (state / "pids").exists() else []:
            subprocess.run(["kill", pid], capture_output=True, check=False)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for passed in ("PASS  401 without a token -> 401", "PASS  200 with a read token -> 200",
                   "PASS  403 for a token without read -> 403", "PASS  401 after revocation -> 401",
                   "e2e_kind.sh: all checks passed"):  # fmt: skip
        assert passed in result.stdout
    calls = (state / "calls").read_text().splitlines()
    assert "kind create cluster --name m2m-auth-e2e --wait 120s" in calls
    assert "kind load docker-image m2m-auth:dev m2m-auth-resource-server:dev --name m2m-auth-e2e" in calls
    assert calls[-2:] == ["kind delete cluster --name m2m-auth-e2e", "kubectl delete namespace all"]
    forwards = subprocess.run(["pgrep", "-f", f"{stand_ins}/kubectl.py"], capture_output=True, text=True, check=False)
    assert forwards.stdout == ""  # the port-forwards were stopped
    assert not list(tmp_path.glob("m2m-e2e-kind.*"))  # its work folder (with the secrets) is gone
