"""The real `m2m-auth` executable against a real server: output, exit codes and one-line errors.

The HTTP commands behave the same whatever database the server uses, so this file runs on the
SQLite server only. Set-up goes through the HTTP API (fast); only the command under test runs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .._pg import free_port
from .._server import ADMIN_TOKEN, Api, ServerProcess

# The shared `server` of the SQLite backend (the postgres one is no different to a command line).
sqlite_server = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

CLI = Path(sys.executable).parent / "m2m-auth"
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def run(
    server: ServerProcess | None, *args: str, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """`m2m-auth ARGS` with M2M_AUTH_URL and M2M_AUTH_ADMIN_TOKEN pointing at the server (unless overridden)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}
    if server is not None:
        environ.update(M2M_AUTH_URL=server.url, M2M_AUTH_ADMIN_TOKEN=ADMIN_TOKEN)
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run([str(CLI), *args], check=False, env=environ, capture_output=True, text=True, timeout=60)


def creds(client: dict[str, Any]) -> list[str]:
    return ["--client-id", client["client_id"], "--client-secret", client["client_secret"]]


def fields(stdout: str) -> dict[str, str]:
    """The `key  value` lines of a table output (keys may contain one space)."""
    out = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("  ")
        if sep:
            out[key.strip()] = value.strip()
    return out


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *mentions: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    message = result.stderr.strip()
    assert "\n" not in message and message.startswith("m2m-auth: "), result.stderr
    assert "Traceback" not in result.stderr
    for text in mentions:
        assert text in message, message


def status_of(api: Api, caller: dict[str, Any], token: str) -> bool:
    return bool(api.introspect(caller, token).json()["active"])


# --- clients -------------------------------------------------------------------------------------


@sqlite_server
def test_clients_create_prints_a_table_with_the_secret_that_works(server: ServerProcess, api: Api) -> None:
    result = run(
        server, "clients", "create", "--name", "cli billing", "--scope", "read write",
        "--audience", "svc-b", "--audience", "svc-c", "--ttl", "300", "--metadata", "tenant=acme",
    )  # fmt: skip

    assert result.returncode == EXIT_OK, result.stderr
    shown = fields(result.stdout)
    assert shown["client_name"] == "cli billing"
    assert shown["scope"] == "read write"
    assert shown["audience"] == "svc-b, svc-c"
    assert shown["token ttl"] == "300 s"
    assert json.loads(shown["metadata"]) == {"tenant": "acme"}
    secret = shown["client_secret"].split()[0]
    client = {"client_id": shown["client_id"], "client_secret": secret}
    token = api.token(client, audience="svc-c").json()
    assert token["expires_in"] == 300 and token["scope"] == "read write"
    assert api.introspect(client, token["access_token"]).json()["tenant"] == "acme"


@sqlite_server
def test_clients_create_json_is_the_registration_answer(server: ServerProcess, api: Api) -> None:
    client_id = f"cli-json-{time.time_ns()}"
    result = run(server, "clients", "create", "--name", "json", "--client-id", client_id, "--scope", "read", "--json")

    assert result.returncode == EXIT_OK, result.stderr
    created = json.loads(result.stdout)
    assert created["client_id"] == client_id and created["scope"] == "read"
    assert created["client_secret"].startswith("m2m_cs_")
    assert api.token(created).status_code == 200


@sqlite_server
def test_clients_list_shows_each_client_and_its_state(server: ServerProcess, api: Api) -> None:
    enabled = api.create_client(client_name="listed-enabled", scope="read")
    disabled = api.create_client(client_name="listed-disabled")
    api.admin("PATCH", f"/admin/clients/{disabled['client_id']}", json={"disabled": True})

    table = run(server, "clients", "list")
    as_json = run(server, "clients", "list", "--json")

    assert table.returncode == EXIT_OK and as_json.returncode == EXIT_OK, table.stderr + as_json.stderr
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()[1:]}
    assert table.stdout.splitlines()[0].split() == ["CLIENT_ID", "NAME", "SCOPE", "STATE"]
    assert rows[enabled["client_id"]][-1] == "enabled" and "read" in rows[enabled["client_id"]]
    assert rows[disabled["client_id"]][-1] == "disabled"
    listed = {c["client_id"]: c for c in json.loads(as_json.stdout)["clients"]}
    assert listed[disabled["client_id"]]["disabled"] is True
    assert "client_secret" not in listed[enabled["client_id"]]
    assert enabled["client_secret"] not in table.stdout + as_json.stdout


@sqlite_server
def test_clients_show_prints_the_client_without_its_secret(server: ServerProcess, api: Api) -> None:
    client = api.create_client(client_name="shown", scope="read write", audience=["svc-b"])

    result = run(server, "clients", "show", client["client_id"])

    assert result.returncode == EXIT_OK, result.stderr
    shown = fields(result.stdout)
    assert (shown["client_id"], shown["client_name"], shown["scope"]) == (client["client_id"], "shown", "read write")
    assert shown["disabled"] == "no"
    assert "client_secret" not in shown and client["client_secret"] not in result.stdout


@sqlite_server
def test_clients_disable_and_enable_switch_token_issuance(server: ServerProcess, api: Api) -> None:
    client = api.create_client()
    token = api.access_token(client)

    disabled = run(server, "clients", "disable", client["client_id"])

    assert disabled.returncode == EXIT_OK, disabled.stderr
    assert api.token(client).status_code == 401
    assert api.admin("GET", f"/admin/clients/{client['client_id']}").json()["disabled"] is True

    enabled = run(server, "clients", "enable", client["client_id"])

    assert enabled.returncode == EXIT_OK, enabled.stderr
    fresh = api.access_token(client)
    assert status_of(api, client, fresh) is True
    assert status_of(api, client, token) is False  # revoked when disabled, and it stays revoked


@sqlite_server
def test_clients_rotate_secret_prints_a_new_secret_and_grace_zero_ends_the_old_one(
    server: ServerProcess, api: Api
) -> None:
    client = api.create_client()

    result = run(server, "clients", "rotate-secret", client["client_id"], "--grace-period", "0", "--json")

    assert result.returncode == EXIT_OK, result.stderr
    body = json.loads(result.stdout)
    assert body["client_id"] == client["client_id"] and isinstance(body["previous_secret_expires_at"], int)
    assert api.token(client).status_code == 401
    assert api.token({**client, "client_secret": body["client_secret"]}).status_code == 200


@sqlite_server
def test_clients_delete_removes_the_client(server: ServerProcess, api: Api) -> None:
    client = api.create_client()

    result = run(server, "clients", "delete", client["client_id"])

    assert result.returncode == EXIT_OK, result.stderr
    assert api.admin("GET", f"/admin/clients/{client['client_id']}").status_code == 404
    assert api.token(client).status_code == 401


@sqlite_server
def test_clients_show_of_an_unknown_client_is_a_one_line_refusal(server: ServerProcess) -> None:
    assert_one_line_error(run(server, "clients", "show", "no-such-client"), EXIT_REFUSED, "not_found")


# --- token, introspect, revoke -------------------------------------------------------------------


@sqlite_server
def test_token_prints_only_the_access_token(server: ServerProcess, api: Api) -> None:
    client = api.create_client(scope="read write")

    result = run(server, "token", *creds(client), "--scope", "read")

    assert result.returncode == EXIT_OK, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and token.startswith("m2m_at_")
    body = api.introspect(client, token).json()
    assert body["active"] is True and body["scope"] == "read"


@sqlite_server
def test_token_json_takes_credentials_from_the_environment(server: ServerProcess, api: Api) -> None:
    client = api.create_client(scope="read")

    result = run(
        server, "token", "--json",
        env={"M2M_AUTH_CLIENT_ID": client["client_id"], "M2M_AUTH_CLIENT_SECRET": client["client_secret"]},
    )  # fmt: skip

    assert result.returncode == EXIT_OK, result.stderr
    body = json.loads(result.stdout)
    assert body["token_type"] == "Bearer" and body["scope"] == "read" and body["expires_in"] > 0
    assert status_of(api, client, body["access_token"]) is True


@sqlite_server
@pytest.mark.parametrize(
    ("args", "code", "mentions"),
    [
        pytest.param(
            ["--scope", "admin"], EXIT_REFUSED, "invalid_scope", id="should fail because the scope is not allowed"
        ),
        pytest.param(["--wrong-secret"], EXIT_REFUSED, "invalid_client", id="should fail because the secret is wrong"),
        pytest.param(
            ["--no-credentials"], EXIT_USAGE, "--client-id", id="should fail because no credentials are given"
        ),
    ],
)
def test_token_refusals_are_one_line_errors(
    server: ServerProcess, api: Api, args: list[str], code: int, mentions: str
) -> None:
    client = api.create_client(scope="read")
    if args == ["--wrong-secret"]:
        args = creds({**client, "client_secret": "m2m_cs_wrong"})
    elif args == ["--no-credentials"]:
        args = []
    else:
        args = [*creds(client), *args]
    assert_one_line_error(run(server, "token", *args), code, mentions)


@sqlite_server
def test_introspect_exits_0_with_the_fields_of_an_active_token(server: ServerProcess, api: Api) -> None:
    client = api.create_client(scope="read", audience=["svc-b"])
    token = api.access_token(client)

    result = run(server, "introspect", token, *creds(client))

    assert result.returncode == EXIT_OK, result.stderr
    shown = fields(result.stdout)
    assert shown["active"] == "True"
    assert (shown["client_id"], shown["scope"], shown["aud"]) == (client["client_id"], "read", "svc-b")


@sqlite_server
def test_introspect_exits_1_for_an_inactive_token(server: ServerProcess, api: Api) -> None:
    client = api.create_client()
    token = api.access_token(client)
    api.revoke(client, token)

    result = run(server, "introspect", token, *creds(client))

    assert result.returncode == EXIT_REFUSED
    assert fields(result.stdout) == {"active": "false"}


@sqlite_server
def test_revoke_as_the_client_makes_the_token_inactive(server: ServerProcess, api: Api) -> None:
    client = api.create_client()
    token = api.access_token(client)

    result = run(server, "revoke", token, *creds(client))

    assert result.returncode == EXIT_OK, result.stderr
    assert status_of(api, client, token) is False


@sqlite_server
def test_revoke_as_admin_makes_the_token_inactive_and_says_when_there_was_nothing_to_do(
    server: ServerProcess, api: Api
) -> None:
    client = api.create_client()
    token = api.access_token(client)

    first = run(server, "revoke", token)
    second = run(server, "revoke", token)

    assert first.returncode == EXIT_OK and first.stdout.strip() == "revoked", first.stderr
    assert status_of(api, client, token) is False
    assert second.returncode == EXIT_OK and "nothing to revoke" in second.stdout


# --- explain -------------------------------------------------------------------------------------


@sqlite_server
def test_explain_accepts_a_good_token(server: ServerProcess, api: Api) -> None:
    client = api.create_client(scope="read write", audience=["svc-b"])
    token = api.access_token(client)

    result = run(server, "explain", token, "--scope", "read", "--audience", "svc-b")

    assert result.returncode == EXIT_OK, result.stderr
    shown = fields(result.stdout)
    assert shown["verdict"] == "ACCEPTED" and shown["known to server"] == "yes"
    assert shown["client"] == f"{client['client_id']} (exists)"
    assert "why" not in shown


def wait_until_inactive(api: Api, client: dict[str, Any], token: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while status_of(api, client, token):
        assert time.monotonic() < deadline, "the 1 s token did not expire"
        time.sleep(0.2)


def _revoked(api: Api) -> str:
    client = api.create_client(scope="read")
    token = api.access_token(client)
    api.revoke(client, token)
    return token


def _expired(api: Api) -> str:
    client = api.create_client(scope="read", access_token_ttl=1)
    token = api.access_token(client)
    wait_until_inactive(api, client, token)
    return token


def _disabled(api: Api) -> str:
    client = api.create_client(scope="read")
    token = api.access_token(client)
    api.admin("PATCH", f"/admin/clients/{client['client_id']}", json={"disabled": True})
    return token


def _good(api: Api) -> str:
    return api.access_token(api.create_client(scope="read", audience=["svc-b"]))


@sqlite_server
@pytest.mark.parametrize(
    ("make_token", "args", "reason"),
    [
        pytest.param(_revoked, [], "revoked at", id="should reject because the token was revoked"),
        pytest.param(_expired, [], "expired", id="should reject because the token expired"),
        pytest.param(_disabled, [], "is disabled", id="should reject because its client is disabled"),
        pytest.param(_good, ["--scope", "write"], "lacks scope write", id="should reject because a scope is missing"),
        pytest.param(
            _good, ["--audience", "svc-c"], "not for audience", id="should reject because the audience differs"
        ),
        pytest.param(
            lambda api: "eyJhbGciOiJub25lIn0.garbage", [], "not a token of this server", id="should reject garbage text"
        ),
    ],
)
def test_explain_rejects_with_the_reason(
    server: ServerProcess, api: Api, make_token: Any, args: list[str], reason: str
) -> None:
    result = run(server, "explain", make_token(api), *args)

    assert result.returncode == EXIT_REFUSED, (result.stdout, result.stderr)
    shown = fields(result.stdout)
    assert shown["verdict"] == "REJECTED"
    assert reason in result.stdout, result.stdout


@sqlite_server
def test_explain_json_has_the_verdict_inputs(server: ServerProcess, api: Api) -> None:
    result = run(server, "explain", _revoked(api), "--json")

    assert result.returncode == EXIT_REFUSED
    body = json.loads(result.stdout)
    assert body["active"] is False and body["known"] is True
    assert any("revoked" in reason for reason in body["reasons"])


# --- database commands ---------------------------------------------------------------------------


def test_migrate_creates_the_schema_in_a_new_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"

    result = run(None, "migrate", "--database-url", f"sqlite:///{path}")

    assert result.returncode == EXIT_OK, result.stderr
    assert "schema revision" in result.stdout
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert {"clients", "client_secrets", "tokens", "server_state"} <= tables
    assert revision in result.stdout


# --- errors --------------------------------------------------------------------------------------


@sqlite_server
def test_an_admin_command_without_an_admin_token_is_a_usage_error(server: ServerProcess) -> None:
    result = run(server, "clients", "list", env={"M2M_AUTH_ADMIN_TOKEN": None})
    assert_one_line_error(result, EXIT_USAGE, "--admin-token", "M2M_AUTH_ADMIN_TOKEN")


@sqlite_server
def test_a_wrong_admin_token_is_refused(server: ServerProcess) -> None:
    result = run(server, "clients", "list", "--admin-token", "wrong-token")
    assert_one_line_error(result, EXIT_REFUSED, "invalid_token")


@sqlite_server
def test_an_unreachable_server_exits_3(server: ServerProcess) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = run(server, "clients", "list", "--url", closed)
    assert_one_line_error(result, EXIT_UNREACHABLE, "cannot reach", closed)


@pytest.mark.parametrize(
    ("args", "env", "mentions"),
    [
        pytest.param(
            ["migrate", "--database-url", "sqlite:///unused.db"],
            {"M2M_AUTH_ACCESS_TOKEN_TTL": "0"},
            "access_token_ttl",
            id="should fail because a setting in the environment is invalid",
        ),
        pytest.param(
            ["migrate", "--database-url", "mysql://db/m2m"],
            {},
            "mysql",
            id="should fail because the database URL scheme is unsupported",
        ),
    ],
)
def test_an_invalid_setting_is_a_usage_error(
    tmp_path: Path, args: list[str], env: dict[str, str], mentions: str
) -> None:
    result = subprocess.run(
        [str(CLI), *args],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}, **env},
        check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_error(result, EXIT_USAGE, mentions)
    assert not (tmp_path / "unused.db").exists()


def test_without_the_server_extra_the_command_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['typer'] = None; from m2m_auth._entry import main; "
        "sys.argv = ['m2m-auth', 'serve']; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "pip install 'm2m-auth[server]'" in result.stderr
    assert "Traceback" not in result.stderr
