"""JWT access tokens (RFC 9068): what they say, how a resource server validates them, and what introspection,
revocation and `explain` make of them.

Validation is PyJWT's, against our JWKS, as a Python resource server would do it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from .._server import ADMIN_TOKEN, Api, ServerProcess
from ._helpers import claims, forge, header, kids, verify, wait_until
from .conftest import JWKS_MAX_AGE

API_A = "https://api-a.example"
API_B = "https://api-b.example"
REGISTERED = {"iss", "sub", "client_id", "aud", "exp", "iat", "nbf", "jti", "scope"}
JWKS_PATHS = ["/.well-known/jwks.json", "/oauth/jwks.json"]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
CLI = Path(sys.executable).parent / "m2m-auth"

Client = dict[str, Any]


def jwt_client(api: Api, **fields: Any) -> Client:
    fields.setdefault("scope", "read write")
    fields.setdefault("audience", [API_A])
    return api.create_client(access_token_format="jwt", **fields)


def introspect(api: Api, caller: Client, token: str) -> dict[str, Any]:
    response = api.introspect(caller, token)
    assert response.status_code == 200, response.text
    return dict(response.json())


def explain(api: Api, token: str, **query: str) -> dict[str, Any]:
    response = api.admin("POST", "/admin/tokens/explain", json={"token": token, **query})
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def resource(jwt_api: Api) -> Client:
    """A resource server's own client: it introspects other clients' tokens."""
    return jwt_api.create_client(client_name="resource server", access_token_format="opaque")


# --- what the token says --------------------------------------------------------------------------


def test_a_jwt_clients_token_is_an_rfc9068_access_token_signed_by_a_published_key(
    jwt_api: Api, jwt_server: ServerProcess
) -> None:
    client = jwt_client(jwt_api, metadata={"tenant": "acme"})
    response = jwt_api.token(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    token = body["access_token"]

    assert header(token) == {"typ": "at+jwt", "alg": "RS256", "kid": header(token)["kid"]}
    assert header(token)["kid"] in kids(jwt_server.url)
    payload = claims(token)
    assert set(payload) == REGISTERED | {"tenant"}
    assert payload["iss"] == jwt_server.url
    assert payload["sub"] == payload["client_id"] == client["client_id"]
    assert payload["aud"] == API_A
    assert payload["scope"] == "read write"
    assert payload["tenant"] == "acme"
    assert payload["nbf"] == payload["iat"]
    assert payload["exp"] - payload["iat"] == body["expires_in"]
    validated = verify(token, f"{jwt_server.url}/.well-known/jwks.json", issuer=jwt_server.url, audience=API_A)
    assert validated == payload


@pytest.mark.parametrize(
    ("registered", "form", "expected"),
    [
        pytest.param([API_A, API_B], {"audience": API_A}, API_A, id="a requested audience becomes aud"),
        pytest.param([API_A, API_B], {"resource": API_B}, API_B, id="a requested resource (RFC 8707) becomes aud"),
        pytest.param([API_A], {}, API_A, id="without a request the client's one audience is aud"),
        pytest.param([API_A, API_B], {}, [API_A, API_B], id="without a request all of the client's audiences are aud"),
        pytest.param([], {}, "issuer", id="a client without audiences gets the issuer as aud"),
    ],
)
def test_the_audience_is_the_requested_target_else_the_clients_else_the_issuer(
    jwt_api: Api, jwt_server: ServerProcess, registered: list[str], form: dict[str, str], expected: Any
) -> None:
    expected = jwt_server.url if expected == "issuer" else expected
    token = jwt_api.access_token(jwt_client(jwt_api, audience=registered), **form)

    assert claims(token)["aud"] == expected
    # Each audience named in the token is accepted by a validator that expects it.
    for audience in [expected] if isinstance(expected, str) else expected:
        verify(token, f"{jwt_server.url}/oauth/jwks.json", issuer=jwt_server.url, audience=audience)


def test_a_token_for_one_api_is_refused_by_a_validator_of_another(jwt_api: Api, jwt_server: ServerProcess) -> None:
    token = jwt_api.access_token(jwt_client(jwt_api, audience=[API_A, API_B]), audience=API_A)

    with pytest.raises(jwt.InvalidAudienceError):
        verify(token, f"{jwt_server.url}/oauth/jwks.json", issuer=jwt_server.url, audience=API_B)


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        pytest.param({}, "read write", id="without a request the scope claim lists every allowed scope"),
        pytest.param({"scope": "write"}, "write", id="a requested scope is the scope claim"),
    ],
)
def test_the_scope_claim_is_space_separated(jwt_api: Api, form: dict[str, str], expected: str) -> None:
    token = jwt_api.access_token(jwt_client(jwt_api, scope="read write"), **form)

    assert claims(token)["scope"] == expected


def test_metadata_becomes_claims_with_their_json_types(jwt_api: Api) -> None:
    metadata = {"tenant": "acme", "tier": 2, "internal": True, "teams": ["payments"], "limits": {"rps": 5}}
    token = jwt_api.access_token(jwt_client(jwt_api, metadata=metadata))

    payload = claims(token)
    assert {name: payload[name] for name in metadata} == metadata
    assert set(payload) == REGISTERED | set(metadata)


def test_every_token_has_a_jti_of_its_own(jwt_api: Api) -> None:
    client = jwt_client(jwt_api)
    tokens = [jwt_api.access_token(client) for _ in range(20)]  # many in the same second, same claims otherwise

    assert len({claims(t)["jti"] for t in tokens}) == len(tokens)


@pytest.mark.parametrize(
    ("server_default", "chosen", "expected"),
    [
        pytest.param("jwt", None, "jwt", id="a client that chooses no format gets the server default jwt"),
        pytest.param("jwt", "opaque", "opaque", id="a client that chooses opaque keeps it on a jwt server"),
        pytest.param("opaque", None, "opaque", id="a client that chooses no format gets the server default opaque"),
        pytest.param("opaque", "jwt", "jwt", id="a client that chooses jwt gets one on an opaque server"),
    ],
)
def test_the_server_default_format_applies_to_clients_that_choose_none(
    request: pytest.FixtureRequest, jwt_server: ServerProcess, server_default: str, chosen: str | None, expected: str
) -> None:
    proc: ServerProcess = jwt_server if server_default == "jwt" else request.getfixturevalue("server")
    api = Api(proc.url)
    try:
        fields = {} if chosen is None else {"access_token_format": chosen}
        client = api.create_client(**fields)
        token = api.access_token(client)
        assert introspect(api, client, token)["active"] is True
    finally:
        api.close()

    if expected == "jwt":
        assert header(token)["typ"] == "at+jwt"
        assert claims(token)["client_id"] == client["client_id"]
    else:
        assert token.startswith("m2m_at_")


# --- the key set ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", JWKS_PATHS, ids=["the jwks at /.well-known", "the jwks at /oauth"])
def test_the_jwks_holds_public_keys_only_and_may_be_cached_for_jwks_max_age(
    jwt_api: Api, jwt_server: ServerProcess, path: str
) -> None:
    token = jwt_api.access_token(jwt_client(jwt_api))
    response = httpx.get(f"{jwt_server.url}{path}", timeout=10)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert f"max-age={JWKS_MAX_AGE}" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert keys, "the JWKS publishes the signing key"
    for key in keys:
        assert not PRIVATE_MEMBERS & set(key), f"private key material published: {sorted(key)}"
        assert key["use"] == "sig"
        assert key["alg"] == "RS256"
        assert key["kty"] == "RSA"
    assert header(token)["kid"] in [key["kid"] for key in keys]
    verify(token, f"{jwt_server.url}{path}", issuer=jwt_server.url, audience=API_A)


def test_discovery_points_at_the_jwks(jwt_server: ServerProcess) -> None:
    metadata = httpx.get(f"{jwt_server.url}/.well-known/oauth-authorization-server", timeout=10).json()

    assert metadata["jwks_uri"] == f"{jwt_server.url}/oauth/jwks.json"
    published = httpx.get(f"{jwt_server.url}/.well-known/jwks.json", timeout=10).json()
    assert httpx.get(metadata["jwks_uri"], timeout=10).json() == published


@pytest.mark.parametrize(
    ("alg", "kty", "curve"),
    [
        pytest.param("RS256", "RSA", None, id="RS256 tokens verify with PyJWT"),
        pytest.param("ES256", "EC", "P-256", id="ES256 tokens verify with PyJWT"),
        pytest.param("EdDSA", "OKP", "Ed25519", id="EdDSA tokens verify with PyJWT"),
    ],
)
def test_each_signing_algorithm_verifies_with_pyjwt(
    signing_server: Callable[[str], ServerProcess], alg: str, kty: str, curve: str | None
) -> None:
    proc = signing_server(alg)
    api = Api(proc.url)
    try:
        token = api.access_token(jwt_client(api))
        jwks = api.http.get("/.well-known/jwks.json").json()
    finally:
        api.close()

    assert header(token)["alg"] == alg
    [key] = [k for k in jwks["keys"] if k["kid"] == header(token)["kid"]]
    assert (key["kty"], key.get("crv"), key["alg"]) == (kty, curve, alg)
    assert not PRIVATE_MEMBERS & set(key)
    payload = verify(token, f"{proc.url}/.well-known/jwks.json", issuer=proc.url, audience=API_A, algorithm=alg)
    assert payload["iss"] == proc.url


# --- tokens the server did not issue, signed with its key -----------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(head: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(payload).encode())}".encode()
    return f"{signing_input.decode()}.{_b64(sign(signing_input))}"


def _hs256_with_public_key(server: ServerProcess, token: str, payload: dict[str, Any]) -> str:
    """RFC 8725 §2.1 algorithm confusion: HMAC keyed with the published RSA public key."""
    [jwk] = [k for k in httpx.get(f"{server.url}/oauth/jwks.json").json()["keys"] if k["kid"] == header(token)["kid"]]
    pem = jwt.PyJWK(jwk).key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = {"typ": "at+jwt", "alg": "HS256", "kid": jwk["kid"]}
    return _compact(head, payload, lambda data: hmac.new(pem, data, hashlib.sha256).digest())


FORGERIES: list[Any] = [
    pytest.param(
        lambda s, t, p: forge(s.database_url, p, {"typ": "at+jwt"}),
        True,
        id="control: a copy signed with the server's key is accepted",
    ),
    pytest.param(
        lambda s, t, p: forge(s.database_url, p, {"typ": "application/at+jwt"}),
        True,
        id="typ application/at+jwt is the same type (RFC 9068 §2.1)",
    ),
    pytest.param(
        lambda s, t, p: forge(s.database_url, p, {"typ": "JWT"}),
        False,
        id="a JWT typed JWT (an ID token, say) is not an access token",
    ),
    pytest.param(
        lambda s, t, p: forge(s.database_url, p, {"typ": None}),
        False,
        id="a JWT without typ is not an access token",
    ),
    pytest.param(
        lambda s, t, p: forge(s.database_url, {**p, "iss": "https://other.example"}, {"typ": "at+jwt"}),
        False,
        id="a JWT naming another issuer is refused even with our signature",
    ),
    pytest.param(
        lambda s, t, p: _compact({"typ": "at+jwt", "alg": "none", "kid": header(t)["kid"]}, p, lambda d: b""),
        False,
        id="alg none with our kid is refused",
    ),
    pytest.param(
        lambda s, t, p: _hs256_with_public_key(s, t, p),
        False,
        id="HS256 keyed with our RSA public key is refused",
    ),
]


@pytest.mark.parametrize(("make", "accepted"), FORGERIES)
def test_introspection_accepts_only_typed_access_tokens_of_this_issuer_with_the_keys_algorithm(
    jwt_api: Api,
    jwt_server: ServerProcess,
    resource: Client,
    make: Callable[[ServerProcess, str, dict[str, Any]], str],
    accepted: bool,
) -> None:
    token = jwt_api.access_token(jwt_client(jwt_api))
    payload = {**claims(token), "jti": "forged-" + claims(token)["jti"]}

    forged = make(jwt_server, token, payload)

    assert introspect(jwt_api, resource, forged)["active"] is accepted


# --- introspection, revocation, expiry ------------------------------------------------------------


def test_introspection_of_a_jwt_answers_the_same_fields_as_for_an_opaque_token(jwt_api: Api, resource: Client) -> None:
    fields = {"scope": "read write", "audience": [API_A], "metadata": {"tenant": "acme"}}
    jwt_owner = jwt_api.create_client(access_token_format="jwt", **fields)
    opaque_owner = jwt_api.create_client(access_token_format="opaque", **fields)
    token = jwt_api.access_token(jwt_owner)

    of_jwt = introspect(jwt_api, resource, token)
    of_opaque = introspect(jwt_api, resource, jwt_api.access_token(opaque_owner))

    assert of_jwt["active"] is True
    assert set(of_jwt) == set(of_opaque)
    differ = {"client_id", "sub", "exp", "iat"}
    assert {k: v for k, v in of_jwt.items() if k not in differ} == {
        k: v for k, v in of_opaque.items() if k not in differ
    }
    # And it says what the token says.
    payload = claims(token)
    for name in ("iss", "sub", "client_id", "aud", "exp", "iat", "scope", "tenant"):
        assert of_jwt[name] == payload[name], name


def _revoke_own(api: Api, owner: Client, other: Client, token: str) -> None:
    assert api.revoke(owner, token).status_code == 200


def _revoke_as_admin(api: Api, owner: Client, other: Client, token: str) -> None:
    response = api.admin("POST", "/admin/tokens/revoke", json={"token": token})
    assert response.status_code == 200, response.text
    assert response.json() == {"revoked": True}


def _revoke_all_of_client(api: Api, owner: Client, other: Client, token: str) -> None:
    response = api.admin("POST", f"/admin/clients/{owner['client_id']}/revoke-tokens")
    assert response.status_code == 200, response.text


def _disable_client(api: Api, owner: Client, other: Client, token: str) -> None:
    response = api.admin("PATCH", f"/admin/clients/{owner['client_id']}", json={"disabled": True})
    assert response.status_code == 200, response.text


def _revoke_as_another_client(api: Api, owner: Client, other: Client, token: str) -> None:
    assert api.revoke(other, token).status_code == 200  # RFC 7009 §2.2: the same answer, and nothing happens


@pytest.mark.parametrize(
    ("action", "active"),
    [
        pytest.param(_revoke_own, False, id="revoked by its own client at /oauth/revoke it is inactive"),
        pytest.param(_revoke_as_admin, False, id="revoked by an admin at /admin/tokens/revoke it is inactive"),
        pytest.param(_revoke_all_of_client, False, id="after revoke-tokens of its client it is inactive"),
        pytest.param(_disable_client, False, id="when its client is disabled it is inactive"),
        pytest.param(_revoke_as_another_client, True, id="another client's revocation leaves it active"),
    ],
)
def test_revocation_of_a_jwt_shows_at_introspection(
    jwt_api: Api,
    resource: Client,
    action: Callable[[Api, Client, Client, str], None],
    active: bool,
) -> None:
    owner = jwt_client(jwt_api)
    other = jwt_client(jwt_api)
    token = jwt_api.access_token(owner)
    bystander = jwt_api.access_token(jwt_client(jwt_api))
    assert introspect(jwt_api, resource, token)["active"] is True

    action(jwt_api, owner, other, token)

    body = introspect(jwt_api, resource, token)
    if active:
        assert body["active"] is True
        assert body["client_id"] == owner["client_id"]
    else:
        assert body == {"active": False}  # RFC 7662 §2.2: nothing more
    assert introspect(jwt_api, resource, bystander)["active"] is True


def test_a_revoked_jwt_still_verifies_locally_until_it_expires(
    jwt_api: Api, jwt_server: ServerProcess, resource: Client
) -> None:
    """The documented limit: a validator that never calls the server cannot see a revocation."""
    owner = jwt_client(jwt_api)
    token = jwt_api.access_token(owner)
    assert jwt_api.revoke(owner, token).status_code == 200

    assert introspect(jwt_api, resource, token) == {"active": False}
    verify(token, f"{jwt_server.url}/oauth/jwks.json", issuer=jwt_server.url, audience=API_A)


def test_registering_a_deleted_clients_id_again_does_not_revive_its_jwts(jwt_api: Api, resource: Client) -> None:
    """JWTs are not stored, so deleting their client leaves a deny-list entry that outlives it."""
    client_id = f"reborn-{uuid.uuid4().hex[:12]}"
    old = jwt_client(jwt_api, client_id=client_id)
    token = jwt_api.access_token(old)
    assert jwt_api.admin("DELETE", f"/admin/clients/{client_id}").status_code == 204
    assert introspect(jwt_api, resource, token) == {"active": False}

    jwt_client(jwt_api, client_id=client_id)

    assert introspect(jwt_api, resource, token) == {"active": False}


def test_a_client_gets_working_tokens_again_right_after_revoke_tokens(jwt_api: Api, resource: Client) -> None:
    """`iat` has whole seconds: a token issued in the second of the revocation must not be born revoked."""
    owner = jwt_client(jwt_api)
    jwt_api.access_token(owner)
    assert jwt_api.admin("POST", f"/admin/clients/{owner['client_id']}/revoke-tokens").status_code == 200

    token = jwt_api.access_token(owner)

    assert introspect(jwt_api, resource, token)["active"] is True


def test_an_expired_jwt_is_inactive_and_no_longer_verifies(
    jwt_api: Api, jwt_server: ServerProcess, resource: Client
) -> None:
    token = jwt_api.access_token(jwt_client(jwt_api, access_token_ttl=1))
    assert claims(token)["exp"] - claims(token)["iat"] == 1

    wait_until(lambda: introspect(jwt_api, resource, token) == {"active": False}, "the token to expire", deadline=10)

    with pytest.raises(jwt.ExpiredSignatureError):
        verify(token, f"{jwt_server.url}/oauth/jwks.json", issuer=jwt_server.url, audience=API_A)
    report = explain(jwt_api, token)
    assert report["active"] is False
    assert any(reason.startswith("expired") for reason in report["reasons"]), report["reasons"]


# --- explain --------------------------------------------------------------------------------------


def _nothing(api: Api, owner: Client, token: str) -> None:
    pass


def _revoke(api: Api, owner: Client, token: str) -> None:
    assert api.revoke(owner, token).status_code == 200


def _disable(api: Api, owner: Client, token: str) -> None:
    assert api.admin("PATCH", f"/admin/clients/{owner['client_id']}", json={"disabled": True}).status_code == 200


def _revoke_all(api: Api, owner: Client, token: str) -> None:
    assert api.admin("POST", f"/admin/clients/{owner['client_id']}/revoke-tokens").status_code == 200


@pytest.mark.parametrize(
    ("action", "query", "active", "reason"),
    [
        pytest.param(_nothing, {}, True, None, id="a valid jwt is explained as accepted"),
        pytest.param(_revoke, {}, False, "revoked at", id="a revoked jwt is explained as revoked"),
        pytest.param(_revoke_all, {}, False, "revoked at", id="a jwt of a client whose tokens were revoked is revoked"),
        pytest.param(_disable, {}, False, "is disabled", id="a jwt of a disabled client names the client"),
        pytest.param(
            _nothing, {"audience": API_B}, True, "not for audience", id="a jwt for another api names its audience"
        ),
        pytest.param(_nothing, {"scope": "admin"}, True, "lacks scope admin", id="a jwt without the scope says so"),
    ],
)
def test_explain_says_why_a_jwt_is_accepted_or_refused(
    jwt_api: Api,
    action: Callable[[Api, Client, str], None],
    query: dict[str, str],
    active: bool,
    reason: str | None,
) -> None:
    owner = jwt_client(jwt_api)
    token = jwt_api.access_token(owner)
    action(jwt_api, owner, token)

    report = explain(jwt_api, token, **query)

    assert report["token_format"] == "jwt"
    assert report["known"] is True
    assert report["client_id"] == owner["client_id"]
    assert report["audience"] == [API_A]
    assert report["active"] is active
    if reason is None:
        assert report["reasons"] == []
    else:
        assert any(reason in r for r in report["reasons"]), report["reasons"]


@pytest.mark.parametrize(
    ("revoked", "exit_code", "verdict"),
    [
        pytest.param(False, 0, "ACCEPTED", id="m2m-auth explain accepts a valid jwt with exit 0"),
        pytest.param(True, 1, "REJECTED", id="m2m-auth explain rejects a revoked jwt with exit 1"),
    ],
)
def test_the_explain_command_reads_jwts(
    jwt_api: Api, jwt_server: ServerProcess, revoked: bool, exit_code: int, verdict: str
) -> None:
    owner = jwt_client(jwt_api)
    token = jwt_api.access_token(owner)
    if revoked:
        _revoke(jwt_api, owner, token)
    command = [str(CLI), "explain", token, "--url", jwt_server.url, "--admin-token", ADMIN_TOKEN]

    table = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    as_json = subprocess.run([*command, "--json"], check=False, capture_output=True, text=True, timeout=60)

    assert table.returncode == exit_code, table.stderr
    assert verdict in table.stdout
    assert "jwt" in table.stdout
    assert as_json.returncode == exit_code, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["token_format"] == "jwt"
    assert report["client_id"] == owner["client_id"]
    assert bool(report["reasons"]) is revoked
