"""Signing-key rotation without breaking anyone: tokens signed before a rotation keep verifying until they
expire, new tokens carry the new kid, a pre-published key is in the JWKS before it signs, and a retired key
leaves the JWKS only once its last token is dead.

Lifetimes are seconds here (max_access_token_ttl=3), so a retired key leaves the JWKS 6 s after its
successor took over: successor start + longest TTL + min(60 s, longest TTL).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .._server import ADMIN_TOKEN, Api, ServerProcess
from ._helpers import claims, header, kids, verify, wait_until

API_A = "https://api-a.example"
CLI = Path(sys.executable).parent / "m2m-auth"
# Tokens live at least 2 s (iat has whole seconds), long enough to use one right after a rotation.
MAX_TTL = 3
SHORT_LIVED = {"max_access_token_ttl": MAX_TTL, "access_token_ttl": MAX_TTL, "access_token_format": "jwt"}

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def opened() -> Iterator[Callable[[ServerProcess], Api]]:
    apis: list[Api] = []

    def open_api(proc: ServerProcess) -> Api:
        apis.append(Api(proc.url))
        return apis[-1]

    yield open_api
    for api in apis:
        api.close()


def key_states(api: Api) -> dict[str, str]:
    response = api.admin("GET", "/admin/keys")
    assert response.status_code == 200, response.text
    return {key["kid"]: key["state"] for key in response.json()["keys"]}


def rotate(api: Api, **body: Any) -> dict[str, Any]:
    response = api.admin("POST", "/admin/keys/rotate", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def is_valid(proc: ServerProcess, token: str) -> bool:
    verify(token, f"{proc.url}/.well-known/jwks.json", issuer=proc.url, audience=API_A)  # raises if not
    return True


def test_a_rotation_keeps_earlier_tokens_valid_and_retires_the_old_key_only_after_they_expired(
    server_factory: ServerFactory, opened: Callable[[ServerProcess], Api]
) -> None:
    proc = server_factory(**SHORT_LIVED)
    api = opened(proc)
    client = api.create_client(audience=[API_A])
    before = api.access_token(client)
    old_kid = header(before)["kid"]

    new = rotate(api)

    assert new["kid"] != old_kid
    assert new["state"] == "active"
    assert set(kids(proc.url)) == {old_kid, new["kid"]}, "the old key is still published right after the rotation"
    assert is_valid(proc, before)
    assert api.introspect(client, before).json()["active"] is True
    after = api.access_token(client)
    assert header(after)["kid"] == new["kid"]
    assert is_valid(proc, after)
    assert key_states(api) == {old_kid: "retired", new["kid"]: "active"}

    wait_until(lambda: old_kid not in kids(proc.url), "the retired key to leave the JWKS")

    # The old key signed until its successor's start (tokens of that very second included): all are dead now.
    assert time.time() >= new["activates_at"] + MAX_TTL, "the key left the JWKS while tokens it signed were valid"
    assert time.time() >= claims(before)["exp"]
    assert kids(proc.url) == [new["kid"]]
    assert key_states(api) == {old_kid: "expired", new["kid"]: "active"}
    assert is_valid(proc, api.access_token(client))


@sqlite_only  # activation times are the key manager's arithmetic; replicas and scheduling cover PostgreSQL
def test_a_delayed_rotation_publishes_the_new_key_before_it_signs(
    server_factory: ServerFactory, opened: Callable[[ServerProcess], Api]
) -> None:
    proc = server_factory(**SHORT_LIVED)
    api = opened(proc)
    client = api.create_client(audience=[API_A])
    old_kid = header(api.access_token(client))["kid"]

    new = rotate(api, delay=3)

    assert new["state"] == "next"
    assert set(kids(proc.url)) == {old_kid, new["kid"]}, "validators can fetch the next key before it signs"
    assert key_states(api) == {old_kid: "active", new["kid"]: "next"}
    seen: list[str] = []

    def signed_by_new_key() -> bool:
        seen.append(api.access_token(client))
        assert is_valid(proc, seen[-1])  # now, while it lives: the JWKS holds whichever key signed it
        return header(seen[-1])["kid"] == new["kid"]

    wait_until(signed_by_new_key, "tokens signed with the new key", deadline=15, interval=0.2)

    # Which key signed each token depends only on whether it was issued before the new key's time.
    for token in seen:
        expected = new["kid"] if claims(token)["iat"] >= new["activates_at"] else old_kid
        assert header(token)["kid"] == expected, claims(token)
    assert header(seen[0])["kid"] == old_kid
    assert key_states(api) == {old_kid: "retired", new["kid"]: "active"}


@sqlite_only
def test_the_keys_commands_list_and_rotate(
    server_factory: ServerFactory, opened: Callable[[ServerProcess], Api]
) -> None:
    proc = server_factory(access_token_format="jwt")
    api = opened(proc)
    client = api.create_client(audience=[API_A])
    old_kid = header(api.access_token(client))["kid"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [str(CLI), "keys", *args, "--url", proc.url, "--admin-token", ADMIN_TOKEN],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    listed = json.loads(cli("list", "--json"))["keys"]
    assert [(k["kid"], k["state"], k["published"]) for k in listed] == [(old_kid, "active", True)]

    rotated = cli("rotate")
    [new_kid] = [line.split()[1] for line in rotated.splitlines() if line.startswith("kid")]
    assert new_kid != old_kid
    assert header(api.access_token(client))["kid"] == new_kid

    table = cli("list")
    rows = {line.split()[0]: line.split()[2] for line in table.splitlines()[1:]}
    assert rows == {old_kid: "retired", new_kid: "active"}
    assert table.splitlines()[0].split()[:3] == ["KID", "ALG", "STATE"]

    scheduled = json.loads(cli("rotate", "--delay", "600", "--json"))
    assert scheduled["kid"] not in (old_kid, new_kid)
    assert key_states(api)[scheduled["kid"]] == "next"
    assert header(api.access_token(client))["kid"] == new_kid


def test_scheduled_rotation_creates_and_prepublishes_the_next_key_by_itself(
    server_factory: ServerFactory, opened: Callable[[ServerProcess], Api]
) -> None:
    proc = server_factory(
        key_rotation_interval=8, key_prepublish=5, jwks_max_age=1, key_refresh_interval=0.5, access_token_format="jwt"
    )
    api = opened(proc)
    client = api.create_client(audience=[API_A])
    [first] = api.admin("GET", "/admin/keys").json()["keys"]
    assert api.http.get("/.well-known/jwks.json").headers["cache-control"] == "public, max-age=1"

    def next_key() -> dict[str, Any] | None:
        keys = api.admin("GET", "/admin/keys").json()["keys"]
        return next((k for k in keys if k["generation"] == first["generation"] + 1), None)

    second = wait_until(next_key, "the server to schedule the next key", deadline=15)
    assert second["state"] == "next", "the scheduled key exists before it signs"
    assert second["activates_at"] > first["activates_at"]
    assert second["kid"] in kids(proc.url), "a scheduled key is published as soon as it exists"

    def signed_by(kid: str) -> str | None:
        token = api.access_token(client)
        expected = kid if claims(token)["iat"] >= second["activates_at"] else first["kid"]
        assert header(token)["kid"] == expected, "signed with a key that was not (or no longer) the current one"
        return token if header(token)["kid"] == kid else None

    token = wait_until(lambda: signed_by(second["kid"]), "tokens signed with the scheduled key", deadline=15)
    assert is_valid(proc, token)
    assert first["kid"] in kids(proc.url), "the previous key stays published for the tokens it signed"


@sqlite_only
def test_a_schedule_whose_prepublication_is_shorter_than_the_jwks_cache_is_refused(
    server_factory: ServerFactory,
) -> None:
    """Validators that cached the JWKS just before the next key appeared would miss it when it starts signing."""
    with pytest.raises(RuntimeError) as refused:
        server_factory(key_rotation_interval=60, key_prepublish=30, jwks_max_age=300)

    assert "key_prepublish must be longer than jwks_max_age" in str(refused.value)
