"""The two Dockerfiles, linted with hadolint and read instruction by instruction (no image is built here).

What the checks stand for: a slim final stage with no build tools or pip cache, a numeric non-root user,
`m2m-auth serve` as entrypoint and command, a health check that needs no curl, no secret baked in, and a
build context (.dockerignore) that sends only what the images copy.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from ._dockerfile import parse
from ._tools import ROOT, script_setting, tool

SERVER = ROOT / "Dockerfile"
RESOURCE_SERVER = ROOT / "examples" / "resource-server" / "Dockerfile"


@pytest.mark.parametrize("dockerfile", [SERVER, RESOURCE_SERVER], ids=["server", "resource-server"])
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    result = subprocess.run(
        [str(tool("hadolint")), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", [SERVER, RESOURCE_SERVER], ids=["server", "resource-server"])
def test_the_final_stage_is_slim_non_root_and_holds_only_the_built_environment(dockerfile: Path) -> None:
    _, stages = parse(dockerfile)
    builder, final = stages[0], stages[-1]

    assert len(stages) == 2 and builder.name == "builder"
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", final.base), final.base
    assert final.base == builder.base  # the copied venv's python must be the same
    user = final.last("USER")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), f"USER {user}: numeric UID:GID, not root"
    for run in final.all("RUN"):
        assert not re.search(r"apt-get|apk |pip |gcc|build-essential", run), run
    copies = final.all("COPY")
    from_builder = [c for c in copies if c.startswith("--from=builder")]
    assert len(from_builder) == 1 and from_builder[0].split()[1] == from_builder[0].split()[2]  # the venv only
    assert all(c.startswith("--from=builder") or c.split()[0].endswith(".py") for c in copies)


def test_the_server_image_runs_m2m_auth_serve_on_the_port_the_manifests_use() -> None:
    _, stages = parse(SERVER)
    final = stages[-1]

    assert json.loads(final.last("ENTRYPOINT")) == ["m2m-auth"]
    assert json.loads(final.last("CMD")) == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert final.last("EXPOSE") == "8000"
    manifest = (ROOT / "deploy" / "k8s" / "base" / "server.yaml").read_text()
    assert 'args: ["serve", "--host", "0.0.0.0", "--port", "8000"]' in manifest


@pytest.mark.parametrize("dockerfile", [SERVER, RESOURCE_SERVER], ids=["server", "resource-server"])
def test_the_health_check_uses_python_not_curl(dockerfile: Path) -> None:
    _, stages = parse(dockerfile)
    check = stages[-1].last("HEALTHCHECK")

    assert check.startswith("--interval=")
    command = json.loads(check.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"] and "urllib.request" in command[2]
    assert "/healthz" in command[2] or "HEALTHCHECK_URL=http://127.0.0.1:8000/healthz" in stages[-1].last("ENV")
    assert "curl" not in dockerfile.read_text().lower().replace("no curl", "")


@pytest.mark.parametrize("dockerfile", [SERVER, RESOURCE_SERVER], ids=["server", "resource-server"])
def test_no_secret_or_setting_of_the_server_is_baked_in(dockerfile: Path) -> None:
    args, stages = parse(dockerfile)
    names = set(args)
    for stage in stages:
        for keyword in ("ENV", "ARG"):
            for value in stage.all(keyword):
                names |= set(re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", value))
    assert names, "expected some ENV"
    assert not [n for n in names if re.search(r"SECRET|TOKEN|PASSWORD|KEY|M2M_AUTH_", n, re.IGNORECASE)]


def test_the_server_image_installs_the_server_and_postgres_extras_from_a_wheel() -> None:
    _, stages = parse(SERVER)
    runs = " && ".join(stages[0].all("RUN"))

    assert "pip wheel" in runs and "--no-deps" in runs
    assert '"${wheel}[server,postgres]"' in runs
    assert "--no-cache-dir" in runs


def test_the_build_context_sends_only_what_the_images_copy() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    included = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]

    assert patterns[0] == "**"  # everything out, then what the images need back in
    sources = set()
    for dockerfile in (SERVER, RESOURCE_SERVER):
        for stage in parse(dockerfile)[1]:
            for copy in stage.all("COPY"):
                if not copy.startswith("--from="):
                    sources.update(copy.split()[:-1])
    assert sources == {"pyproject.toml", "README.md", "src", "examples/resource-server/app.py"}
    for source in sources:
        assert any(source == p or source.startswith(p + "/") for p in included), source
    for secret_prone in (".venv", ".git", "tests", "m2m-auth.db"):
        assert not any(secret_prone == p or secret_prone.startswith(p + "/") for p in included)


def test_the_e2e_script_builds_both_dockerfiles_under_the_names_it_loads() -> None:
    script = (ROOT / "scripts" / "e2e_kind.sh").read_text()

    assert 'docker build --quiet -t "$SERVER_IMAGE" .' in script
    assert 'docker build --quiet -t "$RESOURCE_IMAGE" -f examples/resource-server/Dockerfile .' in script
    assert 'kind load docker-image "$SERVER_IMAGE" "$RESOURCE_IMAGE"' in script
    assert script_setting("SERVER_IMAGE").startswith("m2m-auth:")
