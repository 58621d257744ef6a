"""Node interop: panva's `jose` (createRemoteJWKSet + jwtVerify) accepts our JWT access tokens, as a Node
resource server would check them (RFC 9068 §4: issuer, audience, typ at+jwt), and refuses the wrong ones.

The package lives in tests/interop/node (exact version, lock file committed); scripts/test.sh runs `npm ci`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .._server import Api, ServerProcess
from ._helpers import claims, forge, header

# What jose sees does not depend on the server's database: the SQLite servers suffice.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

NODE_DIR = Path(__file__).resolve().parents[1] / "interop" / "node"
API_A = "https://api-a.example"
API_B = "https://api-b.example"


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    header: dict[str, Any]
    payload: dict[str, Any]
    error: str


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        missing = "node is not installed"
    elif not (NODE_DIR / "node_modules" / "jose" / "package.json").exists():
        missing = "the Node packages are not installed (scripts/test.sh runs `npm ci --prefix tests/interop/node`)"
    else:
        return found
    if os.environ.get("CI"):
        pytest.fail(missing)
    pytest.skip(missing)


@pytest.fixture(scope="module")
def rs256(signing_server: Callable[[str], ServerProcess]) -> Iterator[tuple[ServerProcess, Api]]:
    proc = signing_server("RS256")
    api = Api(proc.url)
    yield proc, api
    api.close()


def jose_verify(node: str, server: ServerProcess, token: str, audience: str, **options: str) -> Verdict:
    """`node verify.mjs` with the JWKS from the server's discovery document, as a Node service finds it."""
    jwks_uri = httpx.get(f"{server.url}/.well-known/oauth-authorization-server", timeout=10).json()["jwks_uri"]
    args = [node, "verify.mjs", jwks_uri, token, options.get("issuer", server.url), audience]
    if "typ" in options:
        args.append(options["typ"])
    done = subprocess.run(args, check=False, cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    if done.returncode == 0:
        out = json.loads(done.stdout)
        return Verdict(True, out["header"], out["payload"], "")
    assert done.returncode == 1, f"verify.mjs failed to run: {done.stderr}"  # 1: jose refused the token
    return Verdict(False, {}, {}, done.stderr.strip())


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"], ids=lambda alg: f"jose verifies our {alg} tokens")
def test_jose_verifies_our_tokens_with_the_remote_jwks(
    node: str, signing_server: Callable[[str], ServerProcess], alg: str
) -> None:
    proc = signing_server(alg)
    api = Api(proc.url)
    try:
        client = api.create_client(scope="read write", audience=[API_A], metadata={"tenant": "acme"})
        token = api.access_token(client)
    finally:
        api.close()

    verdict = jose_verify(node, proc, token, API_A)

    assert verdict.accepted, verdict.error
    assert verdict.header == header(token)
    assert verdict.header["typ"] == "at+jwt"
    assert verdict.header["alg"] == alg
    assert verdict.payload == claims(token)
    assert verdict.payload["client_id"] == client["client_id"]
    assert verdict.payload["tenant"] == "acme"


def _tamper(token: str) -> str:
    """The same header and signature over a payload with one more scope."""
    head, _, signature = token.split(".")
    payload = {**claims(token), "scope": "read write admin"}
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{head}.{body}.{signature}"


@pytest.mark.parametrize(
    ("make", "audience", "options", "error"),
    [
        pytest.param(
            lambda s, t: t, API_B, {}, "ERR_JWT_CLAIM_VALIDATION_FAILED", id="a token for another api is refused"
        ),
        pytest.param(
            lambda s, t: t,
            API_A,
            {"issuer": "https://other-issuer.example"},
            "ERR_JWT_CLAIM_VALIDATION_FAILED",
            id="a token of another issuer than expected is refused",
        ),
        pytest.param(
            lambda s, t: forge(s.database_url, claims(t), {"typ": "JWT"}),
            API_A,
            {},
            "ERR_JWT_CLAIM_VALIDATION_FAILED",
            id="a JWT signed with our key but typed JWT is refused",
        ),
        pytest.param(
            lambda s, t: _tamper(t),
            API_A,
            {},
            "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
            id="a tampered token is refused",
        ),
    ],
)
def test_jose_refuses_a_token_that_is_not_for_it(
    node: str,
    rs256: tuple[ServerProcess, Api],
    make: Callable[[ServerProcess, str], str],
    audience: str,
    options: dict[str, str],
    error: str,
) -> None:
    proc, api = rs256
    token = api.access_token(api.create_client(audience=[API_A, API_B], scope="read write"), audience=API_A)

    verdict = jose_verify(node, proc, make(proc, token), audience, **options)

    assert not verdict.accepted
    assert verdict.error.startswith(error), verdict.error


def test_only_the_typ_check_stops_a_differently_typed_jwt(node: str, rs256: tuple[ServerProcess, Api]) -> None:
    """Control for the typ case above: jose expecting typ JWT accepts the same token, so typ is what refused it."""
    proc, api = rs256
    token = api.access_token(api.create_client(audience=[API_A]))
    typed_jwt = forge(proc.database_url, claims(token), {"typ": "JWT"})

    assert not jose_verify(node, proc, typed_jwt, API_A).accepted
    assert jose_verify(node, proc, typed_jwt, API_A, typ="JWT").accepted
