"""RFC 8725 attacks against the two JWT validators we ship, through a real server.

Client assertions (RFC 7523) that are forged, confused, stale, replayed or malformed get 401
`invalid_client`; forged or altered access tokens (RFC 9068) introspect as exactly `{"active": false}`.
None of them may reach a 5xx.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc.jwk import RSAKey

from .._server import Api, ServerProcess
from ._support import (
    DROP,
    ClientKeys,
    JwksHost,
    assert_invalid_client,
    assertion_claims,
    hs256,
    parts,
    post_assertion,
    public_jwks,
    sign,
    token_form,
    unsigned,
    with_header,
    with_payload,
)

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

MAX_ASSERTION_LIFETIME = 600
ATTACKER_JWKS = "/attacker-jwks.json"


@dataclass(frozen=True)
class Deployment:
    api: Api
    database_url: str

    @property
    def issuer(self) -> str:
        return self.api.url


@pytest.fixture(scope="module")
def deployment(backend: str, database_factory: Callable[[str], str]) -> Iterator[Deployment]:
    """A server that allows assertions at most 10 minutes ahead (the default is an hour)."""
    database_url = database_factory(backend)
    proc = ServerProcess(database_url, max_assertion_lifetime=MAX_ASSERTION_LIFETIME).start()
    api = Api(proc.url)
    yield Deployment(api, database_url)
    api.close()
    proc.stop()


@pytest.fixture(scope="module")
def victim_keys() -> ClientKeys:
    return ClientKeys.generate("victim")


@pytest.fixture(scope="module")
def attacker_keys() -> ClientKeys:
    return ClientKeys.generate("attacker")


@pytest.fixture(scope="module")
def key_host(attacker_keys: ClientKeys) -> Iterator[JwksHost]:
    """Where the attacker publishes its keys, to point jku/x5u at: the server must never fetch them."""
    host = JwksHost()
    host.serve(ATTACKER_JWKS, public_jwks(*attacker_keys.all()))
    yield host
    host.close()


@dataclass(frozen=True)
class Scene:
    """A private_key_jwt victim client, and an attacker who registered a client of its own."""

    issuer: str
    client_id: str
    keys: ClientKeys
    attacker_id: str
    attacker: ClientKeys
    attacker_jwks_url: str

    def claims(self, **changes: Any) -> dict[str, Any]:
        return assertion_claims(self.client_id, self.issuer, **changes)

    def signed(self, **changes: Any) -> str:
        """The victim's valid assertion, changed only as asked."""
        return sign(self.keys.rsa, self.claims(**changes), "RS256")


@pytest.fixture(scope="module")
def scene(deployment: Deployment, victim_keys: ClientKeys, attacker_keys: ClientKeys, key_host: JwksHost) -> Scene:
    api = deployment.api
    victim = api.create_client(
        client_name="victim", token_endpoint_auth_method="private_key_jwt", jwks=public_jwks(*victim_keys.all())
    )
    attacker = api.create_client(
        client_name="attacker", token_endpoint_auth_method="private_key_jwt", jwks=public_jwks(attacker_keys.rsa)
    )
    return Scene(
        deployment.issuer,
        victim["client_id"],
        victim_keys,
        attacker["client_id"],
        attacker_keys,
        key_host.url + ATTACKER_JWKS,
    )


def _now() -> int:
    return int(time.time())


def _flip_signature(token: str) -> str:
    """The token with the first character of its signature changed (6 bits of the first byte)."""
    head, _, signature = token.rpartition(".")
    return f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


def _pem_spki(key: RSAKey) -> bytes:
    return key.as_pem(private=False)


def _pem_pkcs1(key: RSAKey) -> bytes:
    return key.public_key.public_bytes(Encoding.PEM, PublicFormat.PKCS1)


def _jwk_json(key: RSAKey) -> bytes:
    return json.dumps(key.as_dict(private=False)).encode()


# --- client assertions -----------------------------------------------------------------------------

Forge = Callable[[Scene], "str | dict[str, str]"]

ASSERTION_ATTACKS: list[Any] = [
    # RFC 8725 §2.1, §3.1: alg none, and algorithm confusion with the public key as an HMAC secret.
    pytest.param(
        lambda s: unsigned({"alg": "none", "typ": "JWT", "kid": s.keys.rsa.kid}, s.claims()),
        id="an unsigned assertion with alg none is refused",
    ),
    pytest.param(
        lambda s: unsigned({"alg": "None", "kid": s.keys.rsa.kid}, s.claims()),
        id="an unsigned assertion with alg None is refused",
    ),
    pytest.param(lambda s: with_header(s.signed(), alg="none"), id="a signed assertion relabelled alg none is refused"),
    pytest.param(
        lambda s: hs256({"kid": s.keys.rsa.kid}, s.claims(), _pem_spki(s.keys.rsa)),
        id="HS256 keyed with the client's RSA public key PEM (SPKI) is refused",
    ),
    pytest.param(
        lambda s: hs256({"kid": s.keys.rsa.kid}, s.claims(), _pem_pkcs1(s.keys.rsa)),
        id="HS256 keyed with the client's RSA public key PEM (PKCS#1) is refused",
    ),
    pytest.param(
        lambda s: hs256({}, s.claims(), _pem_spki(s.keys.rsa)),
        id="HS256 without kid keyed with the client's RSA public key is refused",
    ),
    pytest.param(
        lambda s: hs256({"kid": s.keys.rsa.kid}, s.claims(), _jwk_json(s.keys.rsa)),
        id="HS256 keyed with the client's public JWK as JSON is refused",
    ),
    pytest.param(
        lambda s: hs256({"kid": s.keys.ec.kid}, s.claims(), s.keys.ec.as_pem(private=False)),
        id="HS256 keyed with the client's EC public key PEM is refused",
    ),
    pytest.param(
        lambda s: sign(s.keys.ec, s.claims(), "ES256", kid=s.keys.rsa.kid),
        id="an ES256 signature naming the client's RSA key is refused",
    ),
    pytest.param(lambda s: with_header(s.signed(), alg=["RS256"]), id="alg given as a JSON array is refused"),
    pytest.param(lambda s: with_header(s.signed(), alg={"RS256": 1}), id="alg given as a JSON object is refused"),
    # Key selection: kid is only ever compared with the client's registered kids.
    pytest.param(lambda s: sign(s.keys.rsa, s.claims(), "RS256", kid="no-such-key"), id="an unknown kid is refused"),
    pytest.param(
        lambda s: sign(s.keys.rsa, s.claims(), "RS256", kid="../../etc/passwd"),
        id="a kid with path traversal characters is refused",
    ),
    pytest.param(
        lambda s: sign(s.keys.rsa, s.claims(), "RS256", kid="' OR 1=1 --"),
        id="a kid with SQL injection characters is refused",
    ),
    pytest.param(lambda s: with_header(s.signed(), kid=1), id="a kid that is a number is refused"),
    pytest.param(lambda s: with_header(s.signed(), kid=["x"]), id="a kid that is a list is refused"),
    pytest.param(
        lambda s: sign(s.attacker.rsa, s.claims(), "RS256"),
        id="a signature by a key another client registered is refused",
    ),
    pytest.param(
        lambda s: sign(s.attacker.rsa2, s.claims(), "RS256", kid=s.keys.rsa.kid),
        id="a signature by another RSA key under the client's kid is refused",
    ),
    pytest.param(
        lambda s: sign(s.attacker.rsa2, s.claims(), "RS256", kid=None),
        id="a signature by another RSA key without kid is refused",
    ),
    pytest.param(
        lambda s: sign(s.attacker.ec, s.claims(), "ES256", kid=s.keys.ec.kid),
        id="a signature by another EC key under the client's kid is refused",
    ),
    # RFC 8725 §3.10: keys named by the token itself are never fetched nor trusted.
    pytest.param(
        lambda s: sign(s.attacker.rsa2, s.claims(), "RS256", kid=None, jwk=s.attacker.rsa2.as_dict(private=False)),
        id="an embedded jwk header with the attacker's key is ignored",
    ),
    pytest.param(
        lambda s: sign(
            s.attacker.rsa2, s.claims(), "RS256", kid=s.keys.rsa.kid, jwk=s.attacker.rsa2.as_dict(private=False)
        ),
        id="an embedded jwk header under the client's kid is ignored",
    ),
    pytest.param(
        lambda s: sign(s.attacker.rsa2, s.claims(), "RS256", jku=s.attacker_jwks_url),
        id="a jku header pointing at the attacker's JWKS is ignored",
    ),
    pytest.param(
        lambda s: sign(s.attacker.rsa2, s.claims(), "RS256", kid=s.keys.rsa.kid, jku=s.attacker_jwks_url),
        id="a jku header under the client's kid is ignored",
    ),
    pytest.param(
        lambda s: sign(s.attacker.rsa2, s.claims(), "RS256", x5u=s.attacker_jwks_url),
        id="an x5u header pointing at the attacker's host is ignored",
    ),
    # Time: exp required and bounded, nbf/iat not in the future (30 s leeway).
    pytest.param(
        lambda s: s.signed(iat=_now() - 660, exp=_now() - 600), id="an assertion expired 10 minutes ago is refused"
    ),
    pytest.param(lambda s: s.signed(exp=_now() - 120), id="an assertion expired 2 minutes ago is refused"),
    pytest.param(
        lambda s: s.signed(exp=_now() + MAX_ASSERTION_LIFETIME + 300),
        id="an exp further ahead than max_assertion_lifetime is refused",
    ),
    pytest.param(lambda s: s.signed(exp=DROP), id="an assertion without exp is refused"),
    pytest.param(lambda s: s.signed(exp=str(_now() + 60)), id="an exp given as a string is refused"),
    pytest.param(lambda s: s.signed(nbf=_now() + 600), id="an nbf 10 minutes in the future is refused"),
    pytest.param(lambda s: s.signed(iat=_now() + 600), id="an iat 10 minutes in the future is refused"),
    pytest.param(lambda s: s.signed(nbf="now"), id="an nbf that is not a number is refused"),
    # Replay protection needs a jti.
    pytest.param(lambda s: s.signed(jti=DROP), id="an assertion without jti is refused"),
    pytest.param(lambda s: s.signed(jti=""), id="an empty jti is refused"),
    pytest.param(lambda s: s.signed(jti=12345), id="a jti that is a number is refused"),
    # Audience: this server's issuer or one of its endpoints, nothing else.
    pytest.param(
        lambda s: s.signed(aud="https://other-as.example/oauth/token"),
        id="an assertion for another authorization server is refused",
    ),
    pytest.param(lambda s: s.signed(aud=f"{s.issuer}.evil.example"), id="an aud that only starts with the issuer"),
    pytest.param(
        lambda s: s.signed(aud=["https://a.example", "https://b.example"]), id="an aud list without us is refused"
    ),
    pytest.param(lambda s: s.signed(aud=DROP), id="an assertion without aud is refused"),
    pytest.param(lambda s: s.signed(aud=[]), id="an empty aud list is refused"),
    # iss = sub = client_id (RFC 7523 §3).
    pytest.param(
        lambda s: {"client_assertion": s.signed(iss=s.attacker_id), "client_id": s.client_id},
        id="an iss naming another client than client_id is refused",
    ),
    pytest.param(lambda s: s.signed(iss=s.attacker_id), id="an iss naming another client is refused"),
    pytest.param(lambda s: s.signed(iss=DROP), id="an assertion without iss is refused"),
    pytest.param(lambda s: s.signed(sub=DROP), id="an assertion without sub is refused"),
    pytest.param(lambda s: s.signed(sub=s.attacker_id), id="a sub other than iss is refused"),
    pytest.param(
        lambda s: sign(s.attacker.rsa, assertion_claims(s.attacker_id, s.issuer, sub=s.client_id), "RS256"),
        id="a client signing for another client's sub is refused",
    ),
    # Integrity.
    pytest.param(
        lambda s: with_payload(s.signed(), jti="fresh-jti-to-dodge-replay"),
        id="a payload changed after signing (new jti) is refused",
    ),
    pytest.param(
        lambda s: with_payload(s.signed(), exp=_now() + 300), id="a payload changed after signing (exp) is refused"
    ),
    pytest.param(
        lambda s: _flip_signature(s.signed()),
        id="a signature with its last bytes changed is refused",
    ),
    # Size and shape.
    pytest.param(
        lambda s: s.signed(padding="x" * 9000), id="a correctly signed assertion over 8192 characters is refused"
    ),
    pytest.param(lambda s: "not-a-jwt", id="a string that is not a JWT is refused"),
    pytest.param(lambda s: "!!!.###.$$$", id="segments that are not base64url are refused"),
    pytest.param(lambda s: "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", id="a payload that is not JSON is refused"),
    pytest.param(lambda s: "W10.W10.c2ln", id="a header and payload that are JSON arrays are refused"),
    pytest.param(lambda s: "..", id="empty segments are refused"),
    pytest.param(lambda s: "a.b.c.d.e", id="a JWE-shaped assertion is refused"),
    pytest.param(lambda s: {"client_assertion": ""}, id="an empty client_assertion is refused"),
    pytest.param(
        lambda s: {"client_assertion": "é" * 100 + ".x.y", "client_id": s.client_id},
        id="non-ASCII in the assertion is refused",
    ),
    pytest.param(
        lambda s: {
            "client_assertion": s.signed(),
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
        },
        id="another client_assertion_type is refused",
    ),
]


def _token_request(http: httpx.Client, forged: str | dict[str, str]) -> httpx.Response:
    form = token_form("") if isinstance(forged, dict) else token_form(forged)
    if isinstance(forged, dict):
        form.update(forged)
    return http.post("/oauth/token", data=form)


def test_the_assertion_every_attack_starts_from_is_accepted(deployment: Deployment, scene: Scene) -> None:
    """The attacks below each change one thing in this assertion; unchanged, it gets a token."""
    for assertion in [scene.signed(), scene.signed(exp=_now() + MAX_ASSERTION_LIFETIME - 10)]:
        response = _token_request(deployment.api.http, assertion)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("forge", ASSERTION_ATTACKS)
def test_forged_client_assertion_is_refused_with_invalid_client(
    deployment: Deployment, scene: Scene, key_host: JwksHost, forge: Forge
) -> None:
    response = _token_request(deployment.api.http, forge(scene))
    assert_invalid_client(response)
    assert "access_token" not in response.text
    assert key_host.count(ATTACKER_JWKS) == 0  # jku/x5u are never followed


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/oauth/introspect", id="a forged assertion is refused at introspection"),
        pytest.param("/oauth/revoke", id="a forged assertion is refused at revocation"),
    ],
)
def test_forged_client_assertion_is_refused_at_every_endpoint(deployment: Deployment, scene: Scene, path: str) -> None:
    forged = hs256({"kid": scene.keys.rsa.kid}, scene.claims(aud=f"{scene.issuer}{path}"), _pem_spki(scene.keys.rsa))
    assert_invalid_client(post_assertion(deployment.api.http, path, forged, token="m2m_at_whatever"))


# --- replay ----------------------------------------------------------------------------------------


def test_a_client_assertion_is_accepted_once(deployment: Deployment, scene: Scene) -> None:
    assertion = scene.signed()
    assert _token_request(deployment.api.http, assertion).status_code == 200
    assert_invalid_client(_token_request(deployment.api.http, assertion))


def test_an_assertion_used_at_the_token_endpoint_is_refused_at_the_others(deployment: Deployment, scene: Scene) -> None:
    assertion = scene.signed()
    token = _token_request(deployment.api.http, assertion).json()["access_token"]
    for path in ("/oauth/introspect", "/oauth/revoke", "/oauth/token"):
        assert_invalid_client(post_assertion(deployment.api.http, path, assertion, token=token))


def _race(urls: list[str], assertion: str) -> list[int]:
    """The same assertion sent at once from one thread per URL."""
    barrier = threading.Barrier(len(urls))
    statuses: list[int] = []

    def send(url: str) -> None:
        with httpx.Client(timeout=10) as http:
            barrier.wait()
            statuses.append(http.post(f"{url}/oauth/token", data=token_form(assertion)).status_code)

    threads = [threading.Thread(target=send, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


def test_an_assertion_sent_many_times_at_once_gets_exactly_one_token(deployment: Deployment, scene: Scene) -> None:
    assert _race([deployment.issuer] * 8, scene.signed()) == [200] + [401] * 7


@pytest.mark.postgres
def test_an_assertion_used_at_one_replica_is_refused_at_another(
    database_factory: Callable[[str], str], victim_keys: ClientKeys
) -> None:
    """Two server processes on one PostgreSQL database, behind one issuer name (as behind a load balancer)."""
    database_url = database_factory("postgres")
    issuer = "https://m2m-auth.replicas.test"
    replicas = [ServerProcess(database_url, issuer=issuer).start()]
    apis: list[Api] = []
    try:
        replicas.append(ServerProcess(database_url, issuer=issuer).start())
        apis.extend(Api(proc.url) for proc in replicas)
        one, two = apis
        client = one.create_client(
            client_name="replicated", token_endpoint_auth_method="private_key_jwt", jwks=public_jwks(victim_keys.ec)
        )

        def assertion() -> str:
            return sign(victim_keys.ec, assertion_claims(client["client_id"], issuer), "ES256")

        used = assertion()
        assert _token_request(one.http, used).status_code == 200
        assert_invalid_client(_token_request(two.http, used))
        assert_invalid_client(_token_request(one.http, used))
        fresh = assertion()
        assert _token_request(two.http, fresh).status_code == 200  # the second replica does accept assertions
        assert_invalid_client(_token_request(one.http, fresh))

        urls = [proc.url for proc in replicas] * 4
        assert _race(urls, assertion()) == [200] + [401] * 7
    finally:
        for api in apis:
            api.close()
        for proc in replicas:
            proc.stop()


# --- access tokens at introspection ----------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    """A real JWT access token of the deployment, what an attacker can learn from the JWKS, and a key of its own."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    server_key: RSAKey
    foreign: RSAKey

    def foreign_signed(self, **header: Any) -> str:
        protected = {"typ": "at+jwt", "kid": self.header["kid"], **header}
        return sign(self.foreign, self.claims, "RS256", **protected)


@pytest.fixture(scope="module")
def holder(deployment: Deployment) -> dict[str, Any]:
    """A client with JWT access tokens; it also introspects them."""
    return deployment.api.create_client(
        client_name="jwt holder", scope="read write", audience=["https://api.example"], access_token_format="jwt"
    )


@pytest.fixture(scope="module")
def issued(deployment: Deployment, holder: dict[str, Any], attacker_keys: ClientKeys) -> Issued:
    token = deployment.api.access_token(holder, scope="read")
    header, claims = parts(token)
    jwks = deployment.api.http.get("/oauth/jwks.json").json()
    published = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert published["kty"] == "RSA" and header["alg"] == "RS256"  # the default signing_alg
    server_key = RSAKey.import_key({"kty": "RSA", "n": published["n"], "e": published["e"]})
    return Issued(token, header, claims, server_key, attacker_keys.rsa)


def introspection(deployment: Deployment, caller: dict[str, Any], token: str) -> dict[str, Any]:
    response = deployment.api.introspect(caller, token)
    assert response.status_code == 200, response.text
    return dict(response.json())


TOKEN_ATTACKS: list[Any] = [
    pytest.param(lambda i: unsigned({**i.header, "alg": "none"}, i.claims), id="the token unsigned with alg none"),
    pytest.param(lambda i: with_header(i.token, alg="none"), id="the token relabelled alg none, signature kept"),
    pytest.param(
        lambda i: unsigned({**i.header, "alg": "none"}, {**i.claims, "scope": "read write"}),
        id="an unsigned alg none token with escalated scope",
    ),
    pytest.param(
        lambda i: hs256(i.header, i.claims, _pem_spki(i.server_key)),
        id="HS256 keyed with the server's public key PEM (SPKI)",
    ),
    pytest.param(
        lambda i: hs256(i.header, i.claims, _pem_pkcs1(i.server_key)),
        id="HS256 keyed with the server's public key PEM (PKCS#1)",
    ),
    pytest.param(
        lambda i: hs256(i.header, i.claims, i.server_key.public_key.public_bytes(Encoding.DER, PublicFormat.PKCS1)),
        id="HS256 keyed with the server's public key DER",
    ),
    pytest.param(
        lambda i: hs256(i.header, i.claims, _jwk_json(i.server_key)), id="HS256 keyed with the server's public JWK"
    ),
    pytest.param(lambda i: i.foreign_signed(), id="signed by a foreign RSA key under our kid"),
    pytest.param(lambda i: i.foreign_signed(kid="no-such-key"), id="signed by a foreign key under an unknown kid"),
    pytest.param(lambda i: i.foreign_signed(kid=None), id="signed by a foreign key without kid"),
    pytest.param(lambda i: i.foreign_signed(kid="../../../../dev/null"), id="a kid with path traversal characters"),
    pytest.param(lambda i: i.foreign_signed(kid="' OR '1'='1"), id="a kid with SQL injection characters"),
    pytest.param(
        lambda i: i.foreign_signed(jwk=i.foreign.as_dict(private=False)), id="an embedded jwk header is ignored"
    ),
    pytest.param(lambda i: i.foreign_signed(typ="JWT"), id="typ JWT signed by a foreign key"),
    # The typ check cannot be reached on its own from outside: this server signs nothing but access
    # tokens, so a typ other than at+jwt can only be had by editing the header, which breaks the signature.
    # These show that such a token is refused, whichever check catches it.
    pytest.param(lambda i: with_header(i.token, typ="JWT"), id="the token with typ changed to JWT"),
    pytest.param(lambda i: with_header(i.token, typ=DROP), id="the token without typ"),
    pytest.param(lambda i: with_header(i.token, typ=["at+jwt"]), id="the token with typ as a JSON array"),
    pytest.param(lambda i: with_header(i.token, kid={"kid": "x"}), id="the token with kid as a JSON object"),
    pytest.param(lambda i: with_header(i.token, alg=["RS256"]), id="the token with alg as a JSON array"),
    pytest.param(lambda i: with_header(i.token, alg="PS256"), id="the token relabelled PS256"),
    pytest.param(lambda i: with_payload(i.token, scope="read write"), id="the token with its scope escalated"),
    pytest.param(lambda i: with_payload(i.token, exp=i.claims["exp"] + 86400), id="the token with exp extended"),
    pytest.param(lambda i: with_payload(i.token, client_id="someone-else"), id="the token with another client_id"),
    pytest.param(lambda i: i.token + "A" * 9000, id="the token padded beyond 8192 characters"),
    pytest.param(lambda i: i.token + "." + i.token, id="two tokens joined by a dot"),
    pytest.param(lambda i: "eyJ" + "A" * 60000, id="a 60 kB token-shaped string"),
    pytest.param(lambda i: "eyJhbGciOiJSUzI1NiJ9.!!!.###", id="segments that are not base64url"),
]


def test_the_token_every_attack_starts_from_is_active(
    deployment: Deployment, holder: dict[str, Any], issued: Issued
) -> None:
    body = introspection(deployment, holder, issued.token)
    assert body["active"] is True and body["scope"] == "read"


@pytest.mark.parametrize("forge", TOKEN_ATTACKS)
def test_forged_access_token_introspects_as_exactly_inactive(
    deployment: Deployment, holder: dict[str, Any], issued: Issued, forge: Callable[[Issued], str]
) -> None:
    assert introspection(deployment, holder, forge(issued)) == {"active": False}


def test_token_signed_with_our_key_for_another_issuer_is_inactive(
    deployment: Deployment, holder: dict[str, Any]
) -> None:
    """A second deployment on the same database shares the signing keys but has another issuer (iss)."""
    sibling = ServerProcess(deployment.database_url).start()
    api = Api(sibling.url)
    try:
        foreign_issuer_token = api.access_token(holder, scope="read")
        assert parts(foreign_issuer_token)[1]["iss"] == sibling.url
        assert api.introspect(holder, foreign_issuer_token).json()["active"] is True  # valid where it was issued
    finally:
        api.close()
        sibling.stop()
    assert introspection(deployment, holder, foreign_issuer_token) == {"active": False}


def test_expired_token_is_inactive(deployment: Deployment) -> None:
    client = deployment.api.create_client(client_name="short-lived", access_token_format="jwt", access_token_ttl=1)
    token = deployment.api.access_token(client)
    assert introspection(deployment, client, token)["active"] is True
    deadline = time.monotonic() + 10
    while introspection(deployment, client, token)["active"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert introspection(deployment, client, token) == {"active": False}
