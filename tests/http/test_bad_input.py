"""Malformed requests at every endpoint: always a 4xx with a JSON `error`, never a 5xx or a traceback."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .._server import Api

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
LIMIT = 64 * 1024

Client = dict[str, Any]


def assert_refused(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and body["error"] == error, body
    assert "Traceback" not in response.text and 'File "' not in response.text


@pytest.fixture
def client(api: Api) -> Client:
    return api.create_client(scope="read", audience=["https://api-a.example"])


# --- the form endpoints: token, introspection, revocation ------------------------------------------

# Each endpoint: (path, a valid body without its main parameter, the main parameter).
FORM_ENDPOINTS = [
    pytest.param(("/oauth/token", "grant_type=client_credentials", "scope"), id="the token endpoint"),
    pytest.param(("/oauth/introspect", "token_type_hint=access_token", "token"), id="the introspection endpoint"),
    pytest.param(("/oauth/revoke", "token_type_hint=access_token", "token"), id="the revocation endpoint"),
]

# Each case: (raw value of the main parameter, content type, expected status).
FORM_CASES = [
    pytest.param(b"%FF%FE", FORM, 400, id="percent-encoding of bytes that are not UTF-8"),
    pytest.param(b"%C3", FORM, 400, id="percent-encoding of a truncated UTF-8 sequence"),
    pytest.param(b"%ED%A0%80", FORM, 400, id="percent-encoding of a UTF-16 surrogate"),
    pytest.param(b"%C0%AF", FORM, 400, id="percent-encoding of an overlong UTF-8 sequence"),
    pytest.param(b"r\xc3\xa9ad", FORM, 400, id="raw UTF-8 bytes, not percent-encoded"),
    pytest.param(b"\xff", FORM, 400, id="a raw byte that is not UTF-8"),
    pytest.param(b"a%00b", FORM, 400, id="a percent-encoded NUL"),
    pytest.param(b"a\x00b", FORM, 400, id="a raw NUL byte"),
    pytest.param(b"read", JSON, 400, id="a JSON content type"),
    pytest.param(b"read", "text/plain", 400, id="a text/plain content type"),
    pytest.param(b"read", "multipart/form-data; boundary=x", 400, id="a multipart content type"),
    pytest.param(b"read", "application/x-www-form-urlencodedX", 400, id="a content type that only starts right"),
    pytest.param(b"read", None, 400, id="no content type"),
    pytest.param(b"x" * (LIMIT + 1), FORM, 413, id="a body over 64 KiB"),
]


@pytest.mark.parametrize("endpoint", FORM_ENDPOINTS)
@pytest.mark.parametrize(("value", "content_type", "status"), FORM_CASES)
def test_a_malformed_form_request_is_refused_with_a_json_error(
    api: Api, client: Client, endpoint: tuple[str, str, str], value: bytes, content_type: str | None, status: int
) -> None:
    path, base, param = endpoint
    body = f"{base}&{param}=".encode() + value
    headers = {
        "Authorization": "Basic "
        + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    }
    if content_type is not None:
        headers["Content-Type"] = content_type
    assert_refused(api.http.post(path, content=body, headers=headers), status, "invalid_request")


@pytest.mark.parametrize("endpoint", FORM_ENDPOINTS)
@pytest.mark.parametrize(
    "name",
    [b"%FF", b"a%00", b"\xc3\xa9"],
    ids=["a parameter name that is not UTF-8", "a parameter name with a NUL", "a raw non-ASCII parameter name"],
)
def test_a_malformed_parameter_name_is_refused(
    api: Api, client: Client, endpoint: tuple[str, str, str], name: bytes
) -> None:
    path, base, _ = endpoint
    response = api.http.post(
        path,
        content=base.encode() + b"&" + name + b"=1",
        headers={"Content-Type": FORM},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert_refused(response, 400, "invalid_request")


@pytest.mark.parametrize("endpoint", FORM_ENDPOINTS)
def test_a_chunked_body_over_64_kib_is_refused_as_it_streams(
    api: Api, client: Client, endpoint: tuple[str, str, str]
) -> None:
    path, base, param = endpoint

    def chunks() -> Iterator[bytes]:
        yield f"{base}&{param}=".encode()
        for _ in range(LIMIT // 4096 + 2):
            yield b"x" * 4096

    response = api.http.post(
        path, content=chunks(), headers={"Content-Type": FORM}, auth=(client["client_id"], client["client_secret"])
    )
    assert_refused(response, 413, "invalid_request")


def test_a_body_of_exactly_64_kib_is_not_too_large(api: Api, client: Client) -> None:
    head = b"grant_type=client_credentials&padding="
    body = head + b"x" * (LIMIT - len(head))
    assert len(body) == LIMIT
    response = api.http.post(
        "/oauth/token",
        content=body,
        headers={"Content-Type": FORM},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert response.status_code == 200, response.text


# --- the admin API --------------------------------------------------------------------------------

# Admin endpoints that read a JSON body; {client_id} is filled in with a registered client.
ADMIN_BODY_ENDPOINTS = [
    pytest.param(("POST", "/admin/clients"), id="client registration"),
    pytest.param(("PATCH", "/admin/clients/{client_id}"), id="client update"),
    pytest.param(("POST", "/admin/clients/{client_id}/secret"), id="secret rotation"),
    pytest.param(("POST", "/admin/tokens/revoke"), id="admin token revocation"),
    pytest.param(("POST", "/admin/tokens/explain"), id="token explanation"),
]

# Each case: (raw body, content type, status, error).
ADMIN_SYNTAX_CASES = [
    pytest.param(b"{", JSON, 400, "invalid_request", id="invalid JSON"),
    pytest.param(b"{}}", JSON, 400, "invalid_request", id="JSON followed by garbage"),
    pytest.param(b"{'token': 'x'}", JSON, 400, "invalid_request", id="single-quoted pseudo-JSON"),
    pytest.param(b'{"token": "\xff\xfe"}', JSON, 400, "invalid_request", id="a JSON string that is not UTF-8"),
    pytest.param(b'{"token": "\\ud800"}', JSON, 400, "invalid_request", id="a JSON string with a lone surrogate"),
    pytest.param(b'{"token": NaN}', JSON, 400, "invalid_request", id="a NaN, which JSON does not have"),
    pytest.param(b"[" * 5000 + b"]" * 5000, JSON, 400, "invalid_request", id="JSON nested 5000 deep"),
    pytest.param(b'{"token": "x"}', "text/plain", 400, "invalid_request", id="a text/plain content type"),
    pytest.param(b"token=x", FORM, 400, "invalid_request", id="a form content type"),
    pytest.param(b'{"token": "x"}', None, 400, "invalid_request", id="no content type"),
    pytest.param(b'{"token": "' + b"x" * LIMIT + b'"}', JSON, 413, "invalid_request", id="a body over 64 KiB"),
    pytest.param(b"[]", JSON, 400, "invalid_client_metadata", id="a JSON array instead of an object"),
    pytest.param(b'"x"', JSON, 400, "invalid_client_metadata", id="a JSON string instead of an object"),
    pytest.param(b"null", JSON, 400, "invalid_client_metadata", id="JSON null instead of an object"),
    pytest.param(b"42", JSON, 400, "invalid_client_metadata", id="a JSON number instead of an object"),
    pytest.param(b'{"no_such_field": 1}', JSON, 400, "invalid_client_metadata", id="an unknown field"),
]


@pytest.mark.parametrize("endpoint", ADMIN_BODY_ENDPOINTS)
@pytest.mark.parametrize(("body", "content_type", "status", "error"), ADMIN_SYNTAX_CASES)
def test_a_malformed_admin_body_is_refused_with_a_json_error(
    api: Api,
    client: Client,
    endpoint: tuple[str, str],
    body: bytes,
    content_type: str | None,
    status: int,
    error: str,
) -> None:
    method, path = endpoint
    headers = dict(api.admin_headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = api.http.request(method, path.format(client_id=client["client_id"]), content=body, headers=headers)
    if path.startswith("/admin/tokens/") and error == "invalid_client_metadata":
        error = "invalid_request"  # a token query is not client metadata (RFC 7591 codes are for registration)
    assert_refused(response, status, error)


CLIENTS = "/admin/clients"
ONE = "/admin/clients/{client_id}"
SECRET = "/admin/clients/{client_id}/secret"
REVOKE = "/admin/tokens/revoke"
EXPLAIN = "/admin/tokens/explain"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        # registration: wrong JSON types
        pytest.param("POST", CLIENTS, {"client_name": 5}, id="a numeric client_name"),
        pytest.param("POST", CLIENTS, {"client_name": ""}, id="an empty client_name"),
        pytest.param("POST", CLIENTS, {"client_name": "x" * 201}, id="a client_name over 200 characters"),
        pytest.param("POST", CLIENTS, {}, id="no client_name"),
        pytest.param("POST", CLIENTS, {"client_name": "a\u0000b"}, id="a client_name with a NUL"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "scope": ["read"]}, id="a scope list instead of a string"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "scope": 'read"'}, id="a scope with a quote"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "scope": "r\u00e9ad"}, id="a non-ASCII scope"),
        pytest.param(
            "POST", CLIENTS, {"client_name": "x", "audience": "https://a"}, id="an audience string, not a list"
        ),
        pytest.param("POST", CLIENTS, {"client_name": "x", "audience": [1]}, id="a numeric audience"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "audience": [""]}, id="an empty audience"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "audience": [" a "]}, id="a padded audience"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "access_token_ttl": "60"}, id="a TTL as a string"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "access_token_ttl": 1.5}, id="a fractional TTL"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "access_token_ttl": True}, id="a boolean TTL"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "access_token_ttl": 2**80}, id="a TTL beyond 64 bits"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "metadata": []}, id="metadata as a list"),
        pytest.param(
            "POST", CLIENTS, {"client_name": "x", "metadata": {"sub": "x"}}, id="metadata naming a registered claim"
        ),
        pytest.param(
            "POST", CLIENTS, {"client_name": "x", "grant_types": ["password"]}, id="an unsupported grant type"
        ),
        pytest.param(
            "POST", CLIENTS, {"client_name": "x", "grant_types": "client_credentials"}, id="grant_types as a string"
        ),
        pytest.param(
            "POST", CLIENTS, {"client_name": "x", "token_endpoint_auth_method": "none"}, id="auth method none"
        ),
        pytest.param("POST", CLIENTS, {"client_name": "x", "client_id": "has space"}, id="a client_id with a space"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "client_id": "a/b"}, id="a client_id with a slash"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "client_id": "a\u0000b"}, id="a client_id with a NUL"),
        pytest.param(
            "POST", CLIENTS, {"client_name": "x", "client_id": "x" * 129}, id="a client_id over 128 characters"
        ),
        pytest.param("POST", CLIENTS, {"client_name": "x", "client_id": "{client_id}"}, id="a client_id already taken"),
        # registration: unknown fields
        pytest.param("POST", CLIENTS, {"client_name": "x", "client_secret": "mine"}, id="a client-chosen secret"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "redirect_uris": ["https://x"]}, id="redirect_uris"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "disabled": True}, id="disabled at registration"),
        pytest.param("POST", CLIENTS, {"client_name": "x", "Scope": "read"}, id="a field name in another case"),
        # update
        pytest.param("PATCH", ONE, {"disabled": "yes"}, id="disabled as a string"),
        pytest.param("PATCH", ONE, {"disabled": 1}, id="disabled as a number"),
        pytest.param("PATCH", ONE, {"disabled": None}, id="disabled as null"),
        pytest.param("PATCH", ONE, {"client_name": None}, id="a null client_name"),
        pytest.param("PATCH", ONE, {"client_name": "a\u0000"}, id="a client_name with a NUL (update)"),
        pytest.param("PATCH", ONE, {"scope": 5}, id="a numeric scope"),
        pytest.param("PATCH", ONE, {"audience": None}, id="a null audience"),
        pytest.param("PATCH", ONE, {"metadata": {"exp": 1}}, id="metadata naming exp"),
        pytest.param("PATCH", ONE, {"client_id": "new-id"}, id="a new client_id"),
        pytest.param("PATCH", ONE, {"client_secret": "mine"}, id="a secret by update"),
        pytest.param("PATCH", ONE, {"grant_types": ["client_credentials"]}, id="grant_types by update"),
        # secret rotation
        pytest.param("POST", SECRET, {"grace_period": "10"}, id="a grace period as a string"),
        pytest.param("POST", SECRET, {"grace_period": -1}, id="a negative grace period"),
        pytest.param("POST", SECRET, {"grace_period": 1.5}, id="a fractional grace period"),
        pytest.param("POST", SECRET, {"grace_period": 10**9}, id="a grace period over 30 days"),
        pytest.param("POST", SECRET, {"grace": 10}, id="a misspelt grace period"),
        # token revocation and explanation
        pytest.param("POST", REVOKE, {}, id="revocation without a token"),
        pytest.param("POST", REVOKE, {"token": 5}, id="a numeric token"),
        pytest.param("POST", REVOKE, {"token": ""}, id="an empty token"),
        pytest.param("POST", REVOKE, {"token": ["x"]}, id="a token list"),
        pytest.param("POST", REVOKE, {"token": "x" * 8193}, id="a token over 8192 characters"),
        pytest.param("POST", REVOKE, {"token": "x", "client_id": "y"}, id="revocation with an unknown field"),
        pytest.param("POST", EXPLAIN, {"token": None}, id="a null token to explain"),
        pytest.param("POST", EXPLAIN, {"token": "x", "scope": 5}, id="a numeric scope to explain"),
        pytest.param("POST", EXPLAIN, {"token": "x", "audience": ["a"]}, id="an audience list to explain"),
    ],
)
def test_wrong_types_and_unknown_fields_in_admin_bodies_are_invalid_client_metadata(
    api: Api, client: Client, method: str, path: str, body: dict[str, Any]
) -> None:
    body = {
        k: (v.format(client_id=client["client_id"]) if isinstance(v, str) and v == "{client_id}" else v)
        for k, v in body.items()
    }
    response = api.admin(method, path.format(client_id=client["client_id"]), json=body)
    # token queries are not client metadata: RFC 7591's code is for registration only
    assert_refused(response, 400, "invalid_request" if path.startswith("/admin/tokens/") else "invalid_client_metadata")
    if method == "PATCH":  # nothing was changed
        stored = api.admin("GET", f"/admin/clients/{client['client_id']}").json()
        assert stored["disabled"] is False and stored["client_name"] == "test client" and stored["scope"] == "read"


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        pytest.param("GET", "", id="reading"),
        pytest.param("PATCH", "", id="updating"),
        pytest.param("DELETE", "", id="deleting"),
        pytest.param("POST", "/secret", id="rotating the secret of"),
        pytest.param("POST", "/revoke-tokens", id="revoking the tokens of"),
    ],
)
@pytest.mark.parametrize(
    "client_id",
    ["no-such-client", "a%00b", "%FF%FE", "x" * 300, "%E2%9C%93"],
    ids=["an unknown client", "a client id with a NUL", "a client id that is not UTF-8", "a 300-character client id",
         "a non-ASCII client id"],
)  # fmt: skip
def test_admin_operations_on_a_client_that_cannot_exist_are_404(
    api: Api, method: str, suffix: str, client_id: str
) -> None:
    kwargs: dict[str, Any] = {"json": {"client_name": "renamed"}} if method == "PATCH" else {}
    if suffix == "/secret":
        kwargs = {"json": {"grace_period": 0}}
    response = api.admin(method, f"/admin/clients/{client_id}{suffix}", **kwargs)
    assert_refused(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/admin/clients", id="listing clients"),
        pytest.param("POST", "/admin/clients", id="registering a client"),
        pytest.param("PATCH", "/admin/clients/x", id="updating a client"),
        pytest.param("POST", "/admin/tokens/revoke", id="revoking a token"),
    ],
)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer wrong", "Basic dGVzdDp0ZXN0", "bearer\twrong"],
    ids=["no Authorization header", "a Bearer scheme without a token", "a wrong admin token", "Basic credentials",
         "a tab after the scheme"],
)  # fmt: skip
def test_an_unauthenticated_admin_request_is_401_before_its_body_is_read(
    api: Api, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Content-Type": JSON} | ({} if authorization is None else {"Authorization": authorization})
    response = api.http.request(method, path, content=b"{not json", headers=headers)
    assert_refused(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


# --- methods and paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/oauth/token", id="GET on the token endpoint"),
        pytest.param("PUT", "/oauth/token", id="PUT on the token endpoint"),
        pytest.param("DELETE", "/oauth/token", id="DELETE on the token endpoint"),
        pytest.param("GET", "/oauth/introspect", id="GET on the introspection endpoint"),
        pytest.param("GET", "/oauth/revoke", id="GET on the revocation endpoint"),
        pytest.param("POST", "/.well-known/oauth-authorization-server", id="POST on the metadata"),
        pytest.param("PUT", "/admin/clients", id="PUT on the client collection"),
        pytest.param("DELETE", "/admin/clients", id="DELETE on the client collection"),
        pytest.param("POST", "/admin/clients/{client_id}", id="POST on a client"),
        pytest.param("PUT", "/admin/clients/{client_id}", id="PUT on a client"),
        pytest.param("GET", "/admin/clients/{client_id}/secret", id="GET on secret rotation"),
        pytest.param("GET", "/admin/clients/{client_id}/revoke-tokens", id="GET on client token revocation"),
        pytest.param("GET", "/admin/tokens/revoke", id="GET on admin token revocation"),
        pytest.param("GET", "/admin/tokens/explain", id="GET on token explanation"),
    ],
)
def test_a_method_an_endpoint_does_not_take_is_a_json_405(api: Api, client: Client, method: str, path: str) -> None:
    response = api.admin(method, path.format(client_id=client["client_id"]))
    assert_refused(response, 405, "invalid_request")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/", id="the root"),
        pytest.param("GET", "/oauth", id="a prefix of the endpoints"),
        pytest.param("GET", "/oauth/authorize", id="an authorization endpoint this server does not have"),
        pytest.param("POST", "/oauth/device_authorization", id="a device endpoint this server does not have"),
        pytest.param("POST", "/oauth/tokens", id="a misspelt token endpoint"),
        pytest.param("GET", "/admin", id="the admin prefix"),
        pytest.param("GET", "/admin/nope", id="an unknown admin path"),
        pytest.param("POST", "/admin/clients/{client_id}/nope", id="an unknown operation on a client"),
        pytest.param("GET", "/%00", id="a path with a NUL"),
        pytest.param("GET", "/%FF%FE", id="a path that is not UTF-8"),
        pytest.param("GET", "/../../etc/passwd", id="a path that climbs"),
        pytest.param("GET", "/" + "a" * 4000, id="a very long path"),
    ],
)
def test_an_unknown_path_is_a_json_404(api: Api, client: Client, method: str, path: str) -> None:
    response = api.admin(method, path.format(client_id=client["client_id"]))
    assert_refused(response, 404, "not_found")
