"""Changing the key-encryption key: the old one, in M2M_AUTH_KEY_ENCRYPTION_KEY_PREVIOUS, still opens the
signing keys it sealed; servers (and `m2m-auth keys reseal`) reseal them with the new one, and afterwards the
new key alone suffices. Resource servers notice nothing: same JWKS, earlier tokens still verify.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from m2m_auth.server.keys import generate_kek

from .._server import Api, ServerProcess
from ._helpers import StoredKey, header, stored_keys, verify

API_A = "https://api-a.example"
# Restarts get a new port; a fixed public issuer keeps the earlier processes' tokens this server's own.
ISSUER = "https://auth.example.test"
CLI = Path(sys.executable).parent / "m2m-auth"
EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def jwt_server(database_url: str, kek: str | None, previous: str | None = None) -> ServerProcess:
    return ServerProcess(
        database_url,
        issuer=ISSUER,
        key_encryption_key=kek,
        key_encryption_key_previous=previous,
        access_token_format="jwt",
    )


def jwks(api: Api) -> list[dict[str, Any]]:
    return list(api.http.get("/oauth/jwks.json").json()["keys"])


def reseal(database_url: str, kek: str | None, previous: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}
    env["M2M_AUTH_DATABASE_URL"] = database_url
    for name, value in (("M2M_AUTH_KEY_ENCRYPTION_KEY", kek), ("M2M_AUTH_KEY_ENCRYPTION_KEY_PREVIOUS", previous)):
        if value is not None:
            env[name] = value
    return subprocess.run(
        [str(CLI), "keys", "reseal", "--json"], check=False, capture_output=True, text=True, env=env, timeout=60
    )


@dataclass(frozen=True)
class Seeded:
    """A database whose signing keys (two generations) were sealed under kek1 by a server since stopped."""

    database_url: str
    kek1: str
    client: dict[str, Any]
    tokens: list[str]  # one signed by each key
    jwks: list[dict[str, Any]]
    keys: list[StoredKey]


def seed(database_url: str, rotations: int = 1) -> Seeded:
    kek1 = generate_kek()
    proc = jwt_server(database_url, kek1).start()
    api = Api(proc.url)
    try:
        client = api.create_client(audience=[API_A])
        tokens = [api.access_token(client)]
        for _ in range(rotations):
            assert api.admin("POST", "/admin/keys/rotate").status_code == 200
            tokens.append(api.access_token(client))
        published = jwks(api)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nserver log:\n{proc.log()}") from None
    finally:
        api.close()
        proc.stop()
    return Seeded(database_url, kek1, client, tokens, published, stored_keys(database_url))


@dataclass(frozen=True)
class Moved:
    """What a server started with kek2 and kek1 as the previous key saw and did."""

    seeded: Seeded
    kek2: str
    jwks: list[dict[str, Any]]
    introspected: list[bool]
    new_token: str
    log: str
    keys_after: list[StoredKey]


@pytest.fixture(scope="module")
def moved(backend: str, database_factory: Callable[[str], str]) -> Moved:
    seeded = seed(database_factory(backend))
    kek2 = generate_kek()
    proc = jwt_server(seeded.database_url, kek2, previous=seeded.kek1).start()
    api = Api(proc.url)
    try:
        for token in seeded.tokens:
            verify(token, f"{proc.url}/oauth/jwks.json", issuer=ISSUER, audience=API_A)
        introspected = [api.introspect(seeded.client, t).json()["active"] for t in seeded.tokens]
        published, new_token = jwks(api), api.access_token(seeded.client)
    finally:
        api.close()
        proc.stop()
    return Moved(seeded, kek2, published, introspected, new_token, proc.log(), stored_keys(seeded.database_url))


def test_with_the_old_kek_as_previous_a_server_serves_the_same_jwks_and_accepts_earlier_tokens(moved: Moved) -> None:
    assert moved.jwks == moved.seeded.jwks
    assert moved.introspected == [True, True]
    assert header(moved.new_token)["kid"] == moved.seeded.keys[-1].kid, "the active key keeps signing"


def test_keys_sealed_with_the_previous_kek_are_resealed_with_the_new_one_and_logged_once(moved: Moved) -> None:
    before = {k.kid: k.private_jwk for k in moved.seeded.keys}
    after = {k.kid: k for k in moved.keys_after}

    assert set(after) == set(before), "no key lost, none added"
    for kid, key in after.items():
        assert key.encryption == "aes-256-gcm"
        assert key.private_jwk != before[kid]
        lines = [line for line in moved.log.splitlines() if kid in line and "resealed" in line]
        assert len(lines) == 1, moved.log
        assert "previous key-encryption key" in lines[0]
    assert "M2M_AUTH_KEY_ENCRYPTION_KEY_PREVIOUS is no longer needed" in moved.log
    for secret in (moved.seeded.kek1, moved.kek2):
        assert secret not in moved.log


def test_after_the_reseal_the_new_kek_alone_starts_and_verifies_earlier_tokens(moved: Moved) -> None:
    proc = jwt_server(moved.seeded.database_url, moved.kek2).start()
    api = Api(proc.url)
    try:
        assert jwks(api) == moved.seeded.jwks
        for token in [*moved.seeded.tokens, moved.new_token]:
            verify(token, f"{proc.url}/oauth/jwks.json", issuer=ISSUER, audience=API_A)
    finally:
        api.close()
        proc.stop()
    assert "resealed" not in proc.log()


def test_after_the_reseal_the_old_kek_alone_is_refused_with_one_clear_line(moved: Moved) -> None:
    proc = jwt_server(moved.seeded.database_url, moved.seeded.kek1)

    with pytest.raises(RuntimeError):
        proc.start()

    assert "does not open with this M2M_AUTH_KEY_ENCRYPTION_KEY (wrong key?)" in proc.log()
    assert "Traceback" not in proc.log()
    assert moved.seeded.kek1 not in proc.log()


@sqlite_only
@pytest.mark.parametrize(
    ("current", "previous", "says"),
    [
        pytest.param(
            "new", "new", "nor with any M2M_AUTH_KEY_ENCRYPTION_KEY_PREVIOUS (wrong key?)", id="neither key fits"
        ),
        pytest.param(
            None, "kek2", "M2M_AUTH_KEY_ENCRYPTION_KEY_PREVIOUS needs M2M_AUTH_KEY_ENCRYPTION_KEY", id="no current kek"
        ),
        pytest.param(
            "kek2", "kek2,not-a-kek", "M2M_AUTH_KEY_ENCRYPTION_KEY_PREVIOUS must be 32 bytes", id="a malformed previous"
        ),
    ],
)
def test_a_server_whose_keks_do_not_fit_refuses_to_start_and_changes_nothing(
    moved: Moved, current: str | None, previous: str, says: str
) -> None:
    def kek(spec: str) -> str:
        return ",".join(moved.kek2 if s == "kek2" else generate_kek() if s == "new" else s for s in spec.split(","))

    proc = jwt_server(moved.seeded.database_url, current and kek(current), kek(previous))

    with pytest.raises(RuntimeError):
        proc.start()

    assert says in proc.log()
    assert "Traceback" not in proc.log()
    assert "not-a-kek" not in proc.log(), "a key, even a malformed one, is never echoed"
    assert stored_keys(moved.seeded.database_url) == moved.keys_after


@sqlite_only
def test_keys_reseal_with_nothing_to_do_reports_it_and_with_a_wrong_kek_fails_in_one_line(moved: Moved) -> None:
    done = reseal(moved.seeded.database_url, moved.kek2, previous=moved.seeded.kek1)
    assert done.returncode == EXIT_OK, done.stderr
    assert json.loads(done.stdout) == {"resealed": [], "keys": 2, "stale": 0}

    for kek in (None, moved.seeded.kek1):
        refused = reseal(moved.seeded.database_url, kek)
        assert refused.returncode == EXIT_USAGE, refused
        message = refused.stderr.strip()
        assert "\n" not in message and message.startswith("m2m-auth: "), refused.stderr
        assert "M2M_AUTH_KEY_ENCRYPTION_KEY" in message
    assert stored_keys(moved.seeded.database_url) == moved.keys_after


def test_replicas_and_the_command_resealing_at_once_each_reseal_every_key_exactly_once(
    backend: str, database_factory: Callable[[str], str]
) -> None:
    seeded = seed(database_factory(backend), rotations=2)
    kek2 = generate_kek()
    replicas = [jwt_server(seeded.database_url, kek2, previous=seeded.kek1) for _ in range(2)]
    commands: list[subprocess.CompletedProcess[str]] = []
    starters = [threading.Thread(target=p.start) for p in replicas]
    starters.append(threading.Thread(target=lambda: commands.append(reseal(seeded.database_url, kek2, seeded.kek1))))
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join()
    try:
        assert all(p.proc is not None and p.proc.poll() is None for p in replicas), [p.log() for p in replicas]
        [command] = commands
        assert command.returncode == EXIT_OK, command.stderr
        by_replicas = [
            line.split("signing key ", 1)[1].split(" ", 1)[0]
            for p in replicas
            for line in p.log().splitlines()
            if "resealed" in line
        ]
        resealed = sorted(by_replicas + json.loads(command.stdout)["resealed"])
        assert resealed == sorted(k.kid for k in seeded.keys), "each key rewritten by exactly one process"
    finally:
        for p in replicas:
            p.stop()

    assert {k.encryption for k in stored_keys(seeded.database_url)} == {"aes-256-gcm"}
    proc = jwt_server(seeded.database_url, kek2).start()
    api = Api(proc.url)
    try:
        assert jwks(api) == seeded.jwks
        for token in seeded.tokens:
            verify(token, f"{proc.url}/oauth/jwks.json", issuer=ISSUER, audience=API_A)
    finally:
        api.close()
        proc.stop()
