"""Signing keys at rest: sealed with AES-256-GCM under M2M_AUTH_KEY_ENCRYPTION_KEY, useless without it.

A server that cannot open its keys refuses to start (it must not quietly make new ones), and one without a
key-encryption key warns at every start and is refused in production mode.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .._server import Api, ServerProcess
from ._helpers import header, stored_keys, verify

API_A = "https://api-a.example"
# Restarts get a new port; a fixed public issuer keeps the tokens of the earlier process this server's own.
ISSUER = "https://auth.example.test"
CLI = Path(sys.executable).parent / "m2m-auth"

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def generate_kek() -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}
    done = subprocess.run(
        [str(CLI), "keys", "generate-kek"], check=False, capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass(frozen=True)
class Sealed:
    """A database whose signing key was sealed by a server that has since stopped."""

    database_url: str
    kek: str
    kid: str
    client: dict[str, Any]
    token: str
    log: str


@pytest.fixture(scope="module")
def sealed(backend: str, database_factory: Callable[[str], str]) -> Iterator[Sealed]:
    kek = generate_kek()
    proc = ServerProcess(
        database_factory(backend), issuer=ISSUER, key_encryption_key=kek, access_token_format="jwt"
    ).start()
    try:
        api = Api(proc.url)
        client = api.create_client(audience=[API_A])
        token = api.access_token(client)
        api.close()
    finally:
        proc.stop()
    yield Sealed(proc.database_url, kek, header(token)["kid"], client, token, proc.log())


def test_generate_kek_prints_32_random_bytes_base64url() -> None:
    keks = {generate_kek() for _ in range(2)}

    assert len(keks) == 2
    for kek in keks:
        assert len(base64.urlsafe_b64decode(kek + "=" * (-len(kek) % 4))) == 32
        assert set(kek) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_with_a_kek_the_private_key_is_stored_sealed(sealed: Sealed) -> None:
    [key] = stored_keys(sealed.database_url)

    assert key.kid == sealed.kid
    assert key.encryption == "aes-256-gcm"
    assert b'"d"' not in key.private_jwk
    with pytest.raises(ValueError):
        json.loads(key.private_jwk)
    assert not {"d", "p", "q"} & set(key.public_jwk)
    assert "UNENCRYPTED" not in sealed.log
    assert sealed.kek not in sealed.log


WRONG_KEY = "does not open with this M2M_AUTH_KEY_ENCRYPTION_KEY"


# Which kek is wrong does not depend on the database; whether sealed bytes survive it does (BLOB, BYTEA).
@pytest.mark.parametrize(
    ("backend", "kek", "says"),
    [
        pytest.param("sqlite", "another", WRONG_KEY, id="another kek on sqlite"),
        pytest.param("postgres", "another", WRONG_KEY, id="another kek on postgres"),
        pytest.param("sqlite", None, "is encrypted: set M2M_AUTH_KEY_ENCRYPTION_KEY", id="no kek at all"),
        pytest.param("sqlite", "not-a-kek", "M2M_AUTH_KEY_ENCRYPTION_KEY must be 32 bytes", id="a kek too short"),
    ],
    indirect=["backend"],
)
def test_a_server_that_cannot_open_its_keys_refuses_to_start_and_changes_nothing(
    sealed: Sealed, kek: str | None, says: str
) -> None:
    proc = ServerProcess(
        sealed.database_url, issuer=ISSUER, key_encryption_key=generate_kek() if kek == "another" else kek
    )

    with pytest.raises(RuntimeError):
        proc.start()

    assert says in proc.log()
    assert "Traceback" not in proc.log(), "one clear line, not a stack trace"
    assert [k.kid for k in stored_keys(sealed.database_url)] == [sealed.kid], "no key was added or replaced"


def test_restarted_with_its_kek_a_server_keeps_its_key_and_its_tokens(sealed: Sealed) -> None:
    proc = ServerProcess(
        sealed.database_url, issuer=ISSUER, key_encryption_key=sealed.kek, access_token_format="jwt"
    ).start()
    api = Api(proc.url)
    try:
        assert api.introspect(sealed.client, sealed.token).json()["active"] is True
        token = api.access_token(sealed.client)
        assert header(token)["kid"] == sealed.kid
        verify(token, f"{proc.url}/oauth/jwks.json", issuer=ISSUER, audience=API_A)
        rotated = api.admin("POST", "/admin/keys/rotate").json()
    finally:
        api.close()
        proc.stop()

    # Keys made later are sealed too.
    assert {k.kid: k.encryption for k in stored_keys(sealed.database_url)} == {
        sealed.kid: "aes-256-gcm",
        rotated["kid"]: "aes-256-gcm",
    }


def test_without_a_kek_the_server_warns_loudly_and_stores_keys_unencrypted(jwt_server: ServerProcess) -> None:
    keys = stored_keys(jwt_server.database_url)

    assert keys and {k.encryption for k in keys} == {"none"}
    assert "M2M_AUTH_KEY_ENCRYPTION_KEY is not set" in jwt_server.log()
    assert "UNENCRYPTED" in jwt_server.log()
    warning = next(line for line in jwt_server.log().splitlines() if "UNENCRYPTED" in line)
    assert warning.startswith("WARNING")


@sqlite_only
@pytest.mark.parametrize(
    ("with_kek", "starts"),
    [
        pytest.param(False, False, id="production mode without a kek refuses to start"),
        pytest.param(True, True, id="production mode with a kek starts"),
    ],
)
def test_production_mode_needs_a_kek(
    server_factory: Callable[..., ServerProcess], with_kek: bool, starts: bool
) -> None:
    settings = {"production": True, "key_encryption_key": generate_kek() if with_kek else None}

    if starts:
        proc = server_factory(**settings)
        assert {k.encryption for k in stored_keys(proc.database_url)} == {"aes-256-gcm"}
        return
    with pytest.raises(RuntimeError) as refused:
        server_factory(**settings)
    assert "production mode needs M2M_AUTH_KEY_ENCRYPTION_KEY" in str(refused.value)


@sqlite_only
def test_keys_stored_before_a_kek_was_set_are_sealed_when_one_is(
    database_factory: Callable[[str], str], backend: str
) -> None:
    url = database_factory(backend)
    plain = ServerProcess(url, issuer=ISSUER, access_token_format="jwt").start()
    plain.stop()
    [before] = stored_keys(url)
    assert before.encryption == "none"

    sealing = ServerProcess(url, issuer=ISSUER, key_encryption_key=generate_kek(), access_token_format="jwt").start()
    sealing.stop()

    [after] = stored_keys(url)
    assert (after.kid, after.encryption) == (before.kid, "aes-256-gcm")
    assert b'"d"' not in after.private_jwk
