"""The server image's install recipe, run without Docker.

The builder stage's RUN lines of the Dockerfile, as written, run here in a shell with its three folders mapped
to temporary ones (/src: this checkout, /wheels, /opt/m2m-auth) and `python` to this interpreter: they make a
wheel, install it with the server and postgres extras into a fresh virtual environment and run `m2m-auth
--help`. Then that environment, which is what the final stage copies, migrates a database: the migrations
travel inside the wheel. Differences from a real build, all to stay fast: this machine's Python (the image has
3.12), pip's cache (the Dockerfile turns it off to keep the image small) and no ahead-of-time bytecode.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

from ._dockerfile import parse
from ._tools import ROOT


def test_the_builder_stage_recipe_installs_a_working_server(tmp_path: Path) -> None:
    _, stages = parse(ROOT / "Dockerfile")
    builder = stages[0]
    assert builder.name == "builder" and builder.last("WORKDIR") == "/src"
    venv = tmp_path / "opt-m2m-auth"
    mapping = {
        "/opt/m2m-auth": str(venv),
        "/wheels": str(tmp_path / "wheels"),
        "/src": str(ROOT),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("M2M_AUTH_", "PIP_", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    for run in builder.all("RUN"):
        command = run
        for image_path, here in mapping.items():
            command = command.replace(image_path, shlex.quote(here))
        command = command.replace("--no-cache-dir ", "").replace("--compile ", "")
        assert command.startswith("python ")
        command = shlex.quote(sys.executable) + command[len("python") :]
        result = subprocess.run(
            ["sh", "-ec", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, f"{run}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"

    cli = venv / "bin" / "m2m-auth"
    database = tmp_path / "image.db"
    migrated = subprocess.run(
        [str(cli), "migrate", "--database-url", f"sqlite:///{database}"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] in migrated.stdout
    # The postgres extra's driver and the server's event loop are in the environment the image copies.
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import asyncpg, uvloop, httptools, m2m_auth.server"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
