"""Real `m2m-auth serve` processes, and a small admin/OAuth client for the tests."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ._pg import free_port

__all__ = ["ServerProcess", "Api", "ADMIN_TOKEN", "basic_header", "terminate", "wait_answering"]

ADMIN_TOKEN = "test-admin-token-0123456789abcdef0123456789"


class ServerProcess:
    def __init__(self, database_url: str, **settings: Any) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = settings
        self.log_path = Path(tempfile.mkstemp(prefix="m2m-auth-server-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}
        env.update(
            M2M_AUTH_DATABASE_URL=self.database_url,
            M2M_AUTH_ISSUER=self.url,
            M2M_AUTH_LOG_LEVEL="info",
        )
        if "admin_token" not in self.settings:
            env["M2M_AUTH_ADMIN_TOKEN"] = ADMIN_TOKEN
        for key, value in self.settings.items():
            if value is not None:
                env[f"M2M_AUTH_{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return env

    def start(self, timeout: float = 30.0) -> ServerProcess:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "m2m_auth", "serve", "--port", str(self.port), "--migrate"],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_answering(self.proc, f"{self.url}/healthz", timeout, "server", self.log, ok_only=True)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_answering(
    proc: subprocess.Popen[bytes], url: str, timeout: float, name: str, log: Callable[[], str], *, ok_only: bool
) -> None:
    """Until `url` answers (200 only, with `ok_only`); RuntimeError with the log if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log()}")
        try:
            status: int | None = httpx.get(url, timeout=1).status_code
        except httpx.HTTPError:
            status = None
        if status is not None and (status == 200 or not ok_only):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not start:\n{log()}")


def terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def basic_header(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")}


class Api:
    """Thin helpers over httpx for what nearly every test does."""

    def __init__(self, url: str, admin_token: str = ADMIN_TOKEN) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)
        self.admin_headers = {"Authorization": f"Bearer {admin_token}"}

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers=self.admin_headers, **kwargs)

    def create_client(self, **fields: Any) -> dict[str, Any]:
        fields.setdefault("client_name", "test client")
        response = self.admin("POST", "/admin/clients", json=fields)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def token(self, client: dict[str, Any], **form: str) -> httpx.Response:
        form.setdefault("grant_type", "client_credentials")
        return self.http.post("/oauth/token", data=form, auth=(client["client_id"], client["client_secret"]))

    def access_token(self, client: dict[str, Any], **form: str) -> str:
        response = self.token(client, **form)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def introspect(self, caller: dict[str, Any], token: str) -> httpx.Response:
        return self.http.post(
            "/oauth/introspect", data={"token": token}, auth=(caller["client_id"], caller["client_secret"])
        )

    def revoke(self, caller: dict[str, Any], token: str) -> httpx.Response:
        return self.http.post(
            "/oauth/revoke", data={"token": token}, auth=(caller["client_id"], caller["client_secret"])
        )

    def close(self) -> None:
        self.http.close()
