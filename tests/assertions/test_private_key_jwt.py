"""private_key_jwt client authentication (RFC 7523 §2.2, §3) against a real server: what a client relies on.

Keys registered inline (`jwks`) or fetched from `jwks_uri` (cached; one refetch a minute on an unknown
kid; fetches that are too big, too slow or broken fail closed), Authlib's `PrivateKeyJWT` as a client,
admin validation of key material, and discovery.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning  # first: importing it installs an "always" filter
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from m2m_auth.server.client_jwks import MAX_JWKS_BYTES, ClientJwks
from m2m_auth.server.core.models import Client as ClientModel

from .._server import Api, ServerProcess
from ._support import (
    ClientKeys,
    JwksHost,
    assert_invalid_client,
    assertion_claims,
    post_assertion,
    public_jwks,
    sign,
)

with warnings.catch_warnings():
    # Authlib 1.9 deprecates its httpx integration in favour of httpx2; it is still what users have installed.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

API = "https://api.example"
_paths = itertools.count()
Client = dict[str, Any]


@pytest.fixture(scope="module")
def keys() -> ClientKeys:
    return ClientKeys.generate("signer")


@pytest.fixture(scope="module")
def signer(api: Api, keys: ClientKeys) -> Client:
    """A private_key_jwt client with two RSA keys, an EC and an Ed25519 key, registered inline."""
    return api.create_client(
        client_name="signer",
        token_endpoint_auth_method="private_key_jwt",
        jwks=public_jwks(*keys.all()),
        scope="read write",
        audience=[API],
    )


@pytest.fixture(scope="module")
def introspector(api: Api) -> Client:
    return api.create_client(client_name="introspector")


def introspect(api: Api, caller: Client, token: str) -> dict[str, Any]:
    response = api.introspect(caller, token)
    assert response.status_code == 200, response.text
    return dict(response.json())


# --- signing with Authlib, as users' code does --------------------------------------------------


@pytest.mark.parametrize(
    ("key_name", "alg", "as_pem"),
    [
        pytest.param("rsa", "RS256", True, id="Authlib signing RS256 with a PEM private key gets tokens"),
        pytest.param("ec", "ES256", False, id="Authlib signing ES256 with an EC key gets tokens"),
        pytest.param("okp", "EdDSA", False, id="Authlib signing EdDSA with an Ed25519 key gets tokens"),
    ],
)
def test_authlib_private_key_jwt_fetches_introspects_and_revokes(
    server: ServerProcess, api: Api, keys: ClientKeys, signer: Client, key_name: str, alg: str, as_pem: bool
) -> None:
    key = getattr(keys, key_name)
    # Authlib puts no kid in the header (each key of the type is tried) and signs for an hour, which the
    # default max_assertion_lifetime (3600 s, plus leeway) accepts; aud is the URL given (or requested).
    with OAuth2Client(
        signer["client_id"],
        key.as_pem(private=True) if as_pem else key,
        token_endpoint_auth_method=PrivateKeyJWT(f"{server.url}/oauth/token", alg=alg),
        revocation_endpoint_auth_method=PrivateKeyJWT(alg=alg),
        timeout=10,
    ) as client:
        token = client.fetch_token(f"{server.url}/oauth/token", grant_type="client_credentials", scope="read")
        assert token["token_type"] == "Bearer" and token["scope"] == "read"

        introspection = client.introspect_token(f"{server.url}/oauth/introspect", token=token["access_token"])
        assert introspection.status_code == 200, introspection.text
        body = introspection.json()
        assert body["active"] is True and body["client_id"] == signer["client_id"] and body["aud"] == API

        revocation = client.revoke_token(f"{server.url}/oauth/revoke", token=token["access_token"])
        assert revocation.status_code == 200, revocation.text

        after = client.introspect_token(f"{server.url}/oauth/introspect", token=token["access_token"])
        assert after.json() == {"active": False}


# --- signing by hand -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_name", "alg"),
    [
        pytest.param("rsa", "RS256", id="RS256 with an RSA key is accepted"),
        pytest.param("rsa", "PS256", id="PS256 with the same RSA key is accepted"),
        pytest.param("rsa2", "RS256", id="the client's second RSA key is accepted by its kid"),
        pytest.param("ec", "ES256", id="ES256 with a P-256 key is accepted"),
        pytest.param("okp", "EdDSA", id="Ed25519 signatures named EdDSA are accepted"),
        pytest.param("okp", "Ed25519", id="Ed25519 signatures named Ed25519 (RFC 9864) are accepted"),
    ],
)
def test_assertion_signed_with_an_allowed_algorithm_gets_a_token(
    server: ServerProcess, api: Api, keys: ClientKeys, signer: Client, introspector: Client, key_name: str, alg: str
) -> None:
    assertion = sign(getattr(keys, key_name), assertion_claims(signer["client_id"], f"{server.url}/oauth/token"), alg)
    response = post_assertion(api.http, "/oauth/token", assertion, scope="write")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = introspect(api, introspector, response.json()["access_token"])
    assert (body["active"], body["client_id"], body["scope"]) == (True, signer["client_id"], "write")


@pytest.mark.parametrize(
    ("key_name", "alg"),
    [
        pytest.param("rsa2", "RS256", id="an RSA assertion without kid is tried against each RSA key"),
        pytest.param("ec", "ES256", id="an EC assertion without kid is checked against the EC key"),
        pytest.param("okp", "Ed25519", id="an Ed25519 assertion without kid is checked against the OKP key"),
    ],
)
def test_assertion_without_kid_is_verified_against_the_keys_of_its_type(
    server: ServerProcess, api: Api, keys: ClientKeys, signer: Client, key_name: str, alg: str
) -> None:
    claims = assertion_claims(signer["client_id"], f"{server.url}/oauth/token")
    response = post_assertion(api.http, "/oauth/token", sign(getattr(keys, key_name), claims, alg, kid=None))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "audience",
    [
        pytest.param(lambda issuer: issuer, id="aud the issuer identifier (rfc7523bis) is accepted"),
        pytest.param(lambda issuer: f"{issuer}/", id="aud the issuer with a trailing slash is accepted"),
        pytest.param(lambda issuer: f"{issuer}/oauth/token", id="aud the token endpoint (RFC 7523) is accepted"),
        pytest.param(
            lambda issuer: ["https://other.example", issuer], id="aud a list that names the issuer is accepted"
        ),
    ],
)
def test_assertion_audience_may_be_the_issuer_or_the_token_endpoint(
    server: ServerProcess, api: Api, keys: ClientKeys, signer: Client, audience: Callable[[str], Any]
) -> None:
    claims = assertion_claims(signer["client_id"], audience(server.url))
    response = post_assertion(api.http, "/oauth/token", sign(keys.ec, claims, "ES256"))
    assert response.status_code == 200, response.text


def test_assertion_may_not_be_valid_longer_than_max_assertion_lifetime_allows(
    server: ServerProcess, api: Api, keys: ClientKeys, signer: Client
) -> None:
    aud = f"{server.url}/oauth/token"
    within = assertion_claims(signer["client_id"], aud, lifetime=3600)
    beyond = assertion_claims(signer["client_id"], aud, lifetime=3600 + 300)
    assert post_assertion(api.http, "/oauth/token", sign(keys.rsa, within, "RS256")).status_code == 200
    assert_invalid_client(post_assertion(api.http, "/oauth/token", sign(keys.rsa, beyond, "RS256")))


def test_private_key_jwt_client_introspects_and_revokes_its_own_token(
    server: ServerProcess, api: Api, keys: ClientKeys, signer: Client
) -> None:
    def assertion(endpoint: str) -> str:
        return sign(keys.okp, assertion_claims(signer["client_id"], f"{server.url}{endpoint}"), "EdDSA")

    token_response = post_assertion(api.http, "/oauth/token", assertion("/oauth/token"))
    assert token_response.status_code == 200, token_response.text
    token = token_response.json()["access_token"]

    active = post_assertion(api.http, "/oauth/introspect", assertion("/oauth/introspect"), token=token)
    assert active.status_code == 200, active.text
    assert active.json()["active"] is True and active.json()["client_id"] == signer["client_id"]

    revoked = post_assertion(api.http, "/oauth/revoke", assertion("/oauth/revoke"), token=token)
    assert revoked.status_code == 200, revoked.text

    after = post_assertion(api.http, "/oauth/introspect", assertion("/oauth/introspect"), token=token)
    assert after.status_code == 200 and after.json() == {"active": False}


@pytest.mark.parametrize(
    "request_for",
    [
        pytest.param(
            lambda client_id: {"data": {"client_id": client_id, "client_secret": "m2m_cs_guess"}},
            id="a private_key_jwt client cannot use client_secret_post",
        ),
        pytest.param(
            lambda client_id: {"data": {}, "auth": (client_id, "m2m_cs_guess")},
            id="a private_key_jwt client cannot use client_secret_basic",
        ),
    ],
)
def test_private_key_jwt_client_cannot_authenticate_with_a_secret(
    api: Api, signer: Client, request_for: Callable[[str], dict[str, Any]]
) -> None:
    kwargs = request_for(signer["client_id"])
    kwargs["data"]["grant_type"] = "client_credentials"
    assert_invalid_client(api.http.post("/oauth/token", **kwargs))


def test_secret_client_cannot_authenticate_with_an_assertion(server: ServerProcess, api: Api, keys: ClientKeys) -> None:
    secret_client = api.create_client(client_name="secret only")
    claims = assertion_claims(secret_client["client_id"], server.url)
    assert_invalid_client(post_assertion(api.http, "/oauth/token", sign(keys.rsa, claims, "RS256")))


# --- admin validation of key material ------------------------------------------------------------


def test_private_key_jwt_client_is_created_without_a_secret_and_refuses_secret_rotation(
    api: Api, keys: ClientKeys
) -> None:
    response = api.admin(
        "POST",
        "/admin/clients",
        json={
            "client_name": "keys only",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": public_jwks(keys.rsa),
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert "client_secret" not in body
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert body["jwks"] == public_jwks(keys.rsa)

    rotation = api.admin("POST", f"/admin/clients/{body['client_id']}/secret", json={})
    assert rotation.status_code == 400, rotation.text
    assert rotation.json()["error"] == "invalid_request"
    assert "client_secret" not in rotation.json()


def _private_jwk(keys: ClientKeys) -> dict[str, Any]:
    return {"keys": [keys.rsa.as_dict(private=True)]}


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(lambda k: {"token_endpoint_auth_method": "private_key_jwt"}, id="private_key_jwt with no keys"),
        pytest.param(
            lambda k: {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": public_jwks(k.rsa),
                "jwks_uri": "https://keys.example/jwks.json",
            },
            id="private_key_jwt with both jwks and jwks_uri",
        ),
        pytest.param(
            lambda k: {"token_endpoint_auth_method": "private_key_jwt", "jwks": _private_jwk(k)},
            id="a private key (with d) in jwks",
        ),
        pytest.param(
            lambda k: {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]},
            },
            id="a symmetric key in jwks",
        ),
        pytest.param(
            lambda k: {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": []}},
            id="an empty JWK set",
        ),
        pytest.param(
            lambda k: {"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://keys.example/jwks.json"},
            id="a plain http jwks_uri on a remote host",
        ),
        pytest.param(
            lambda k: {"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "file:///etc/passwd"},
            id="a file jwks_uri",
        ),
        pytest.param(
            lambda k: {"token_endpoint_auth_method": "client_secret_basic", "jwks": public_jwks(k.rsa)},
            id="jwks on a client_secret_basic client",
        ),
        pytest.param(
            lambda k: {"token_endpoint_auth_method": "client_secret_post", "jwks_uri": "https://keys.example/j"},
            id="jwks_uri on a client_secret_post client",
        ),
    ],
)
def test_admin_refuses_unusable_key_material(
    api: Api, keys: ClientKeys, fields: Callable[[ClientKeys], dict[str, Any]]
) -> None:
    response = api.admin("POST", "/admin/clients", json={"client_name": "bad keys", **fields(keys)})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda k: {"jwks": _private_jwk(k)}, id="PATCH to a private key is refused"),
        pytest.param(lambda k: {"jwks_uri": "https://keys.example/j"}, id="PATCH adding jwks_uri to jwks is refused"),
        pytest.param(
            lambda k: {"token_endpoint_auth_method": "client_secret_basic"},
            id="PATCH to a secret method while keys are registered is refused",
        ),
    ],
)
def test_admin_refuses_updates_that_leave_unusable_key_material(
    server: ServerProcess, api: Api, keys: ClientKeys, change: Callable[[ClientKeys], dict[str, Any]]
) -> None:
    client = api.create_client(token_endpoint_auth_method="private_key_jwt", jwks=public_jwks(keys.ec))
    response = api.admin("PATCH", f"/admin/clients/{client['client_id']}", json=change(keys))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"
    # The client still authenticates with its registered key.
    assertion = sign(keys.ec, assertion_claims(client["client_id"], server.url), "ES256")
    assert post_assertion(api.http, "/oauth/token", assertion).status_code == 200


# --- discovery -----------------------------------------------------------------------------------


def test_discovery_advertises_private_key_jwt_with_asymmetric_algorithms_only(api: Api) -> None:
    metadata = api.http.get("/.well-known/oauth-authorization-server").json()
    for endpoint in ("token", "introspection", "revocation"):
        assert "private_key_jwt" in metadata[f"{endpoint}_endpoint_auth_methods_supported"]
        algs = metadata[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
        assert {"RS256", "PS256", "ES256", "EdDSA"} <= set(algs)
        assert not [alg for alg in algs if alg.lower() == "none" or alg.upper().startswith("HS")]


# --- jwks_uri ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jwks_host() -> Iterator[JwksHost]:
    host = JwksHost()
    yield host
    host.close()


@pytest.fixture(scope="module")
def remote(backend: str, database_factory: Callable[[str], str]) -> Iterator[Api]:
    """A server with a short jwks_uri timeout, so slow key hosts fail quickly."""
    proc = ServerProcess(database_factory(backend), jwks_uri_timeout=0.5).start()
    api = Api(proc.url)
    yield api
    api.close()
    proc.stop()


@pytest.fixture
def path() -> str:
    """A path of its own on the key host: the host outlives the per-backend servers."""
    return f"/jwks-{next(_paths)}.json"


def remote_client(api: Api, jwks_uri: str) -> Client:
    return api.create_client(client_name="remote keys", token_endpoint_auth_method="private_key_jwt", jwks_uri=jwks_uri)


def test_jwks_uri_is_fetched_once_and_cached_across_token_requests(
    remote: Api, jwks_host: JwksHost, keys: ClientKeys, path: str
) -> None:
    client = remote_client(remote, jwks_host.serve(path, public_jwks(keys.rsa, keys.ec)))
    assert jwks_host.count(path) == 0  # registration does not fetch
    for key, alg in [(keys.rsa, "RS256"), (keys.ec, "ES256"), (keys.rsa, "PS256"), (keys.ec, "ES256")]:
        response = post_assertion(
            remote.http, "/oauth/token", sign(key, assertion_claims(client["client_id"], remote.url), alg)
        )
        assert response.status_code == 200, response.text
    assert jwks_host.count(path) == 1


def test_a_rotated_client_key_is_picked_up_but_forged_kids_cause_no_more_fetches(
    remote: Api, jwks_host: JwksHost, keys: ClientKeys, path: str
) -> None:
    client = remote_client(remote, jwks_host.serve(path, public_jwks(keys.rsa)))
    claims = assertion_claims(client["client_id"], remote.url)
    assert post_assertion(remote.http, "/oauth/token", sign(keys.rsa, claims, "RS256")).status_code == 200
    assert jwks_host.count(path) == 1

    # The client rotates its key: its first assertion with the new kid makes the one refetch of the minute.
    jwks_host.serve(path, public_jwks(keys.rsa, keys.rsa2))
    time.sleep(1.1)  # refetches are at least a second apart
    claims = assertion_claims(client["client_id"], remote.url)
    assert post_assertion(remote.http, "/oauth/token", sign(keys.rsa2, claims, "RS256")).status_code == 200
    assert jwks_host.count(path) == 2
    # Forged kids within that minute: nothing goes out.
    for kid in ["forged-1", "forged-2", "forged-3", "../../etc/passwd"]:
        claims = assertion_claims(client["client_id"], remote.url)
        assert_invalid_client(post_assertion(remote.http, "/oauth/token", sign(keys.rsa2, claims, "RS256", kid=kid)))
    assert jwks_host.count(path) == 2


def _padded_jwks(keys: ClientKeys) -> dict[str, Any]:
    """A valid JWK set with the client's key, made larger than the limit with a junk key."""
    return {"keys": [keys.rsa.as_dict(private=False), {"kty": "oct", "kid": "padding", "k": "A" * MAX_JWKS_BYTES}]}


@pytest.mark.parametrize(
    ("document", "behaviour"),
    [
        pytest.param(_padded_jwks, {}, id="a JWKS larger than 64 KiB is refused"),
        pytest.param(None, {"delay": 3.0}, id="a JWKS answered after the timeout is refused"),
        pytest.param(None, {"trickle": 0.2}, id="a JWKS trickled in over longer than the timeout is refused"),
        pytest.param(None, {"status": 500}, id="a jwks_uri answering 500 is refused"),
        pytest.param(None, {"status": 302, "location": "/elsewhere.json"}, id="a redirect is not followed"),
        pytest.param(lambda k: b"<html>keys</html>", {}, id="a jwks_uri answering HTML is refused"),
        pytest.param(lambda k: [k.rsa.as_dict(private=False)], {}, id="a bare list of keys is refused"),
    ],
)
def test_jwks_uri_that_cannot_be_used_fails_closed_with_invalid_client(
    remote: Api,
    jwks_host: JwksHost,
    keys: ClientKeys,
    path: str,
    document: Callable[[ClientKeys], Any] | None,
    behaviour: dict[str, Any],
) -> None:
    body = document(keys) if document else public_jwks(keys.rsa)
    jwks_host.serve("/elsewhere.json", public_jwks(keys.rsa))
    client = remote_client(remote, jwks_host.serve(path, body, **behaviour))
    claims = assertion_claims(client["client_id"], remote.url)
    assert_invalid_client(post_assertion(remote.http, "/oauth/token", sign(keys.rsa, claims, "RS256")))
    assert jwks_host.count(path) == 1
    assert remote.http.get("/healthz").status_code == 200


class _FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def test_client_jwks_picks_up_a_rotated_key_and_refetches_at_most_once_a_minute(
    jwks_host: JwksHost, keys: ClientKeys, path: str
) -> None:
    """ClientJwks on a fake clock: through a real server each step would need a minute of waiting."""
    client = ClientModel(
        client_id="rotating",
        client_name="rotating",
        token_endpoint_auth_method="private_key_jwt",
        jwks_uri=jwks_host.serve(path, public_jwks(keys.rsa)),
    )
    start = 1_000_000.0
    clock = _FakeClock(start)
    rsa, rsa2 = keys.rsa.kid, keys.rsa2.kid

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            jwks = ClientJwks(http, clock, cache_ttl=600)

            async def at(seconds: float, kid: str | None) -> tuple[list[str], int]:
                clock.t = start + seconds
                found = await jwks.keys_for(client, kid)
                return [k["kid"] for k in found], jwks_host.count(path)

            assert await at(0, rsa) == ([rsa], 1)  # first use: fetched
            assert await at(30, rsa) == ([rsa], 1)  # cached
            jwks_host.serve(path, public_jwks(keys.rsa2))  # the client rotates its key
            assert await at(31, rsa2) == ([rsa2], 2)  # unknown kid: refetched at once
            assert await at(32, "forged") == ([rsa2], 2)  # another unknown kid within the minute: no fetch
            assert await at(90, "forged") == ([rsa2], 2)
            assert await at(91, "forged") == ([rsa2], 3)  # a minute after the last refetch: one more
            assert await at(130, None) == ([rsa2], 3)  # no kid: served from the cache
            assert await at(690, None) == ([rsa2], 3)
            assert await at(691, None) == ([rsa2], 4)  # jwks_uri_cache_ttl after the last fetch: refreshed

    asyncio.run(scenario())


def test_jwks_uri_client_signing_without_kid_is_verified_from_the_fetched_keys(
    remote: Api, jwks_host: JwksHost, keys: ClientKeys, path: str
) -> None:
    client = remote_client(remote, jwks_host.serve(path, public_jwks(keys.rsa, keys.okp)))
    claims = assertion_claims(client["client_id"], f"{remote.url}/oauth/token")
    response = post_assertion(remote.http, "/oauth/token", sign(keys.okp, claims, "Ed25519", kid=None))
    assert response.status_code == 200, response.text
    assert jwks_host.count(path) == 1
