"""POST /oauth/token, grant_type=client_credentials (RFC 6749 §2.3, §3.2, §4.4, §5; RFC 8707)."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from .._server import Api, ServerProcess

FORM = "application/x-www-form-urlencoded"
TOKEN_SHAPE = re.compile(r"m2m_at_([A-Za-z0-9_-]{43})")
API_A = "https://api-a.example"
API_B = "https://api-b.example"

Client = dict[str, Any]


def percent_encode_all(value: str) -> str:
    """Form-encode every byte, as RFC 6749 §2.3.1 allows a client to (e.g. `~` as %7E)."""
    return "".join(f"%{b:02X}" for b in value.encode("utf-8"))


def basic_header(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def raw_basic(payload: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(payload).decode("ascii")}


def post_token(api: Api, body: str | bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return api.http.post("/oauth/token", content=body, headers={"Content-Type": FORM, **(headers or {})})


def form(**params: str) -> str:
    return str(httpx.QueryParams(params))


def aud_set(introspection: dict[str, Any]) -> set[str]:
    aud = introspection["aud"]
    return {aud} if isinstance(aud, str) else set(aud)


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


@pytest.fixture
def client(api: Api) -> Client:
    return api.create_client(scope="read write admin:x", audience=[API_A, API_B])


@pytest.fixture(scope="module")
def tuned(backend: str, database_factory: Callable[[str], str]) -> Iterator[Api]:
    """One server per backend with non-default token settings, shared by this module's tests."""
    proc = ServerProcess(
        database_factory(backend),
        access_token_ttl=77,
        max_access_token_ttl=100,
        default_audience="https://default-audience.example",
    ).start()
    api = Api(proc.url)
    yield api
    api.close()
    proc.stop()


# --- client authentication: the two shared-secret methods ------------------------------------


@pytest.mark.parametrize(
    ("registered", "method"),
    [
        pytest.param({}, "basic", id="a client registered with the defaults, using the Basic header"),
        pytest.param({"token_endpoint_auth_method": "client_secret_basic"}, "basic", id="client_secret_basic"),
        pytest.param({"token_endpoint_auth_method": "client_secret_post"}, "post", id="client_secret_post"),
    ],
)
def test_a_client_gets_a_bearer_token_with_its_shared_secret_method(
    api: Api, registered: dict[str, str], method: str
) -> None:
    client = api.create_client(scope="read", **registered)
    if method == "basic":
        response = post_token(
            api, form(grant_type="client_credentials"), basic_header(client["client_id"], client["client_secret"])
        )
    else:
        response = post_token(
            api,
            form(grant_type="client_credentials", client_id=client["client_id"], client_secret=client["client_secret"]),
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert api.introspect(client, body["access_token"]).json()["active"] is True


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda s: s, id="an id and secret sent as they are"),
        pytest.param(percent_encode_all, id="an id and secret with every byte percent-encoded (RFC 6749 §2.3.1)"),
        pytest.param(lambda s: percent_encode_all(s).lower(), id="lower-case percent escapes"),
        pytest.param(
            lambda s: s.replace("~", "%7E").replace(".", "%2E"), id="only the tilde and the dot percent-encoded"
        ),
    ],
)
def test_basic_credentials_are_form_decoded_before_they_are_compared(api: Api, encode: Callable[[str], str]) -> None:
    client_id = f"svc.payments~v2-{time.monotonic_ns()}_eu"
    client = api.create_client(client_id=client_id, scope="read")
    assert client["client_id"] == client_id
    headers = basic_header(encode(client_id), encode(client["client_secret"]))
    response = post_token(api, form(grant_type="client_credentials"), headers)
    assert response.status_code == 200, response.text
    assert api.introspect(client, response.json()["access_token"]).json()["client_id"] == client_id


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC"], ids=["Basic", "basic in lower case", "BASIC"])
def test_the_basic_scheme_name_is_case_insensitive(api: Api, client: Client, scheme: str) -> None:
    credentials = basic_header(client["client_id"], client["client_secret"])["Authorization"].split(" ", 1)[1]
    response = post_token(api, form(grant_type="client_credentials"), {"Authorization": f"{scheme} {credentials}"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        pytest.param(
            lambda c: {"client_secret": c["client_secret"]}, "invalid_request",
            id="a Basic header and a client_secret in the form",
        ),
        pytest.param(
            lambda c: {"client_id": c["client_id"], "client_secret": c["client_secret"]}, "invalid_request",
            id="a Basic header and client_secret_post credentials",
        ),
        pytest.param(
            lambda c: {"client_id": "someone-else"}, "invalid_request",
            id="a form client_id that differs from the header",
        ),
        pytest.param(lambda c: {"client_id": c["client_id"]}, None, id="a form client_id equal to the header is fine"),
    ],
)  # fmt: skip
def test_more_than_one_authentication_method_is_invalid_request(
    api: Api, client: Client, fields: Callable[[Client], dict[str, str]], error: str | None
) -> None:
    body = form(grant_type="client_credentials", **fields(client))
    response = post_token(api, body, basic_header(client["client_id"], client["client_secret"]))
    if error is None:
        assert response.status_code == 200, response.text
    else:
        assert_error(response, 400, error)


def _disable(api: Api, client: Client) -> None:
    assert api.admin("PATCH", f"/admin/clients/{client['client_id']}", json={"disabled": True}).status_code == 200


def _delete(api: Api, client: Client) -> None:
    assert api.admin("DELETE", f"/admin/clients/{client['client_id']}").status_code == 204


def _post(client_id: str, secret: str) -> dict[str, str]:
    return {"client_id": client_id, "client_secret": secret}


# Each case: (setup on the registered client, Authorization headers, extra form fields).
INVALID_CLIENT_CASES = [
    pytest.param(
        None, lambda c: basic_header("no-such-client", c["client_secret"]), {}, id="an unknown client (Basic)"
    ),
    pytest.param(None, lambda c: {}, _post("no-such-client", "m2m_cs_x"), id="an unknown client (form)"),
    pytest.param(None, lambda c: basic_header(c["client_id"], "m2m_cs_wrong"), {}, id="a wrong secret (Basic)"),
    pytest.param(None, lambda c: {}, lambda c: _post(c["client_id"], "m2m_cs_wrong"), id="a wrong secret (form)"),
    pytest.param(None, lambda c: basic_header(c["client_id"], c["client_secret"][:-1]), {}, id="a truncated secret"),
    pytest.param(
        None, lambda c: basic_header(c["client_id"], c["client_secret"].upper()), {}, id="a secret in the wrong case"
    ),
    pytest.param(None, lambda c: {}, {}, id="no credentials at all"),
    pytest.param(None, lambda c: {}, lambda c: {"client_id": c["client_id"]}, id="a client_id without a secret"),
    pytest.param(None, lambda c: {"Authorization": "Basic !!!not-base64!!!"}, {}, id="a Basic header not in base64"),
    pytest.param(None, lambda c: {"Authorization": "Basic"}, {}, id="a Basic scheme without credentials"),
    pytest.param(None, lambda c: raw_basic(b"no-colon-here"), {}, id="Basic credentials without a colon"),
    pytest.param(None, lambda c: raw_basic(c["client_id"].encode() + b":"), {}, id="Basic credentials with no secret"),
    pytest.param(None, lambda c: raw_basic(b":" + c["client_secret"].encode()), {}, id="Basic credentials with no id"),
    pytest.param(None, lambda c: raw_basic(b"\xff\xfe:\xff"), {}, id="Basic credentials that are not UTF-8"),
    pytest.param(
        None, lambda c: basic_header("%FF%FE", c["client_secret"]), {}, id="a Basic id percent-encoding invalid UTF-8"
    ),
    pytest.param(None, lambda c: basic_header("a%00b", "x"), {}, id="a Basic id with a percent-encoded NUL"),
    pytest.param(None, lambda c: raw_basic(b"a\x00b:x"), {}, id="a Basic id with a raw NUL"),
    pytest.param(None, lambda c: basic_header("x" * 2000, "y"), {}, id="a Basic id far longer than any client id"),
    pytest.param(
        None, lambda c: {"Authorization": f"Bearer {c['client_secret']}"}, {}, id="a Bearer header instead of Basic"
    ),
    pytest.param(_disable, lambda c: basic_header(c["client_id"], c["client_secret"]), {}, id="a disabled client"),
    pytest.param(
        _disable, lambda c: {}, lambda c: _post(c["client_id"], c["client_secret"]), id="a disabled client (form)"
    ),
    pytest.param(_delete, lambda c: basic_header(c["client_id"], c["client_secret"]), {}, id="a deleted client"),
]


@pytest.mark.parametrize(("setup", "headers", "fields"), INVALID_CLIENT_CASES)
def test_failed_client_authentication_is_always_401_invalid_client_with_a_challenge(
    api: Api,
    client: Client,
    setup: Callable[[Api, Client], None] | None,
    headers: Callable[[Client], dict[str, str]],
    fields: dict[str, str] | Callable[[Client], dict[str, str]],
) -> None:
    if setup is not None:
        setup(api, client)
    extra = fields(client) if callable(fields) else fields
    response = post_token(api, form(grant_type="client_credentials", **extra), headers(client))
    assert_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].lower().startswith("basic")
    assert "access_token" not in response.json()


def test_a_secret_of_another_client_does_not_authenticate(api: Api, client: Client) -> None:
    other = api.create_client()
    response = post_token(
        api, form(grant_type="client_credentials"), basic_header(client["client_id"], other["client_secret"])
    )
    assert_error(response, 401, "invalid_client")


# --- grant type and request syntax ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param("", "invalid_request", id="an empty body has no grant_type"),
        pytest.param("scope=read", "invalid_request", id="a request without grant_type"),
        pytest.param("grant_type=", "invalid_request", id="an empty grant_type is the same as none"),
        pytest.param("grant_type=password", "unsupported_grant_type", id="the password grant is not supported"),
        pytest.param(
            "grant_type=authorization_code&code=x", "unsupported_grant_type", id="authorization_code is not supported"
        ),
        pytest.param("grant_type=refresh_token", "unsupported_grant_type", id="refresh_token is not supported"),
        pytest.param(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
            "unsupported_grant_type",
            id="the JWT bearer grant is not supported",
        ),
        pytest.param("grant_type=CLIENT_CREDENTIALS", "unsupported_grant_type", id="grant_type is case-sensitive"),
        pytest.param(
            "grant_type=client_credentials&grant_type=client_credentials",
            "invalid_request",
            id="a repeated grant_type, even with equal values",
        ),
        pytest.param("grant_type=client_credentials&scope=read&scope=write", "invalid_request", id="a repeated scope"),
        pytest.param(
            f"grant_type=client_credentials&audience={API_A}&audience={API_B}",
            "invalid_request",
            id="a repeated audience",
        ),
    ],
)
def test_grant_type_and_repeated_parameters(api: Api, client: Client, body: str, error: str) -> None:
    response = post_token(api, body, basic_header(client["client_id"], client["client_secret"]))
    assert_error(response, 400, error)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda c: f"grant_type=client_credentials&client_id={c['client_id']}&client_id={c['client_id']}"
                     f"&client_secret={c['client_secret']}", id="a repeated client_id"),
        pytest.param(lambda c: f"grant_type=client_credentials&client_id={c['client_id']}"
                     f"&client_secret={c['client_secret']}&client_secret={c['client_secret']}", id="a repeated secret"),
    ],
)  # fmt: skip
def test_repeated_credentials_in_the_form_are_invalid_request(
    api: Api, client: Client, body: Callable[[Client], str]
) -> None:
    assert_error(post_token(api, body(client)), 400, "invalid_request")


@pytest.mark.parametrize(
    "content_type",
    [FORM, f"{FORM}; charset=utf-8", f"{FORM};charset=UTF-8", "Application/X-WWW-Form-URLEncoded"],
    ids=["the plain form type", "with a charset", "with a charset and no space", "in mixed case"],
)
def test_the_form_content_type_is_matched_without_its_parameters_and_case(
    api: Api, client: Client, content_type: str
) -> None:
    response = api.http.post(
        "/oauth/token",
        content="grant_type=client_credentials",
        headers={"Content-Type": content_type, **basic_header(client["client_id"], client["client_secret"])},
    )
    assert response.status_code == 200, response.text


def test_unknown_parameters_are_ignored(api: Api, client: Client) -> None:
    response = post_token(
        api,
        "grant_type=client_credentials&foo=bar&&state=1",
        basic_header(client["client_id"], client["client_secret"]),
    )
    assert response.status_code == 200, response.text


# --- the token itself -------------------------------------------------------------------------


def test_an_access_token_is_prefixed_and_carries_256_random_bits(api: Api, client: Client) -> None:
    tokens = {api.access_token(client) for _ in range(3)}
    assert len(tokens) == 3
    for token in tokens:
        match = TOKEN_SHAPE.fullmatch(token)
        assert match, token
        assert len(base64.urlsafe_b64decode(match.group(1) + "=")) == 32


# --- scope (RFC 6749 §3.3) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        pytest.param(None, {"read", "write", "admin:x"}, id="no scope requested grants every allowed scope"),
        pytest.param("read", {"read"}, id="one allowed scope"),
        pytest.param("write read", {"read", "write"}, id="two allowed scopes in another order"),
        pytest.param("read write admin:x", {"read", "write", "admin:x"}, id="every allowed scope named"),
        pytest.param("read  read ", {"read"}, id="repeated scopes and doubled spaces collapse"),
        pytest.param("", {"read", "write", "admin:x"}, id="an empty scope is the same as none"),
    ],
)
def test_the_granted_scope_is_the_requested_subset(
    api: Api, client: Client, requested: str | None, granted: set[str]
) -> None:
    params = {"grant_type": "client_credentials"}
    if requested is not None:
        params["scope"] = requested
    response = post_token(api, form(**params), basic_header(client["client_id"], client["client_secret"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["scope"].split()) == granted and len(body["scope"].split()) == len(granted)
    assert set(api.introspect(client, body["access_token"]).json()["scope"].split()) == granted


@pytest.mark.parametrize(
    "requested",
    [
        pytest.param("delete", id="a scope the client is not allowed"),
        pytest.param("read delete", id="an allowed scope with one that is not"),
        pytest.param("READ", id="an allowed scope in another case"),
        pytest.param("read:", id="a longer scope that starts like an allowed one"),
        pytest.param('read"', id="a double quote, outside the scope-token syntax"),
        pytest.param("read\\", id="a backslash, outside the scope-token syntax"),
        pytest.param("r\u00e9ad", id="a non-ASCII scope"),
        pytest.param("read\twrite", id="a tab between scopes"),
        pytest.param("read\nwrite", id="a newline between scopes"),
        pytest.param("read\x7fwrite", id="a DEL character"),
    ],
)
def test_a_scope_outside_the_allowed_set_or_malformed_is_invalid_scope(
    api: Api, client: Client, requested: str
) -> None:
    response = post_token(
        api,
        form(grant_type="client_credentials", scope=requested),
        basic_header(client["client_id"], client["client_secret"]),
    )
    assert_error(response, 400, "invalid_scope")


def test_a_client_without_scopes_gets_a_token_without_scope_and_may_not_ask_for_one(api: Api) -> None:
    client = api.create_client()
    body = api.token(client).json()
    assert "scope" not in body  # RFC 6749 §5.1: nothing to state
    assert api.introspect(client, body["access_token"]).json()["scope"] == ""
    assert_error(api.token(client, scope="read"), 400, "invalid_scope")


# --- audience and resource (RFC 8707) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "audience"),
    [
        pytest.param("", {API_A, API_B}, id="nothing requested gives every audience of the client"),
        pytest.param(f"&audience={API_A}", {API_A}, id="one audience"),
        pytest.param(f"&resource={API_B}", {API_B}, id="one resource"),
        pytest.param(f"&resource={API_A}&resource={API_B}", {API_A, API_B}, id="a repeated resource is allowed"),
        pytest.param(f"&resource={API_A}&resource={API_A}", {API_A}, id="the same resource twice counts once"),
        pytest.param(f"&audience={API_A}&resource={API_B}", {API_A, API_B}, id="audience and resource together"),
        pytest.param(
            "&resource=" + percent_encode_all(API_A), {API_A}, id="a percent-encoded resource is decoded first"
        ),
    ],
)
def test_the_token_audience_is_the_requested_targets(api: Api, client: Client, body: str, audience: set[str]) -> None:
    response = post_token(
        api, "grant_type=client_credentials" + body, basic_header(client["client_id"], client["client_secret"])
    )
    assert response.status_code == 200, response.text
    assert aud_set(api.introspect(client, response.json()["access_token"]).json()) == audience


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("&audience=https://api-c.example", id="an audience the client may not use"),
        pytest.param("&resource=https://api-c.example", id="a resource the client may not use"),
        pytest.param(f"&resource={API_A}&resource=https://api-c.example", id="one allowed resource and one not"),
        pytest.param(
            f"&audience={API_A}&resource=https://api-c.example", id="an allowed audience with a foreign resource"
        ),
        pytest.param(f"&audience={API_A}/", id="an allowed audience with a trailing slash"),
        pytest.param("&audience=HTTPS://API-A.EXAMPLE", id="an allowed audience in another case"),
    ],
)
def test_a_target_outside_the_clients_audiences_is_invalid_target(api: Api, client: Client, body: str) -> None:
    response = post_token(
        api, "grant_type=client_credentials" + body, basic_header(client["client_id"], client["client_secret"])
    )
    assert_error(response, 400, "invalid_target")


def test_a_client_without_audiences_gets_the_issuer_and_may_not_ask_for_another(
    api: Api, server: ServerProcess
) -> None:
    client = api.create_client(scope="read")
    token = api.access_token(client)
    assert aud_set(api.introspect(client, token).json()) == {server.url}
    assert_error(api.token(client, audience="https://api-a.example"), 400, "invalid_target")
    assert_error(api.token(client, resource=server.url), 400, "invalid_target")


def test_the_configured_default_audience_replaces_the_issuer(tuned: Api) -> None:
    client = tuned.create_client()
    token = tuned.access_token(client)
    assert aud_set(tuned.introspect(client, token).json()) == {"https://default-audience.example"}
    with_own = tuned.create_client(audience=[API_A])
    assert aud_set(tuned.introspect(with_own, tuned.access_token(with_own)).json()) == {API_A}


# --- lifetime -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_ttl", "expected"),
    [
        pytest.param(None, 600, id="a client without a TTL gets the server default of 600 s"),
        pytest.param(1, 1, id="a client TTL of 1 s"),
        pytest.param(3600, 3600, id="a client TTL longer than the default"),
    ],
)
def test_expires_in_is_the_clients_ttl_or_the_servers_default(api: Api, client_ttl: int | None, expected: int) -> None:
    client = api.create_client(**({} if client_ttl is None else {"access_token_ttl": client_ttl}))
    body = api.token(client).json()
    assert body["expires_in"] == expected
    if expected > 1:  # a 1 s token may already be gone by the time it is introspected
        info = api.introspect(client, body["access_token"]).json()
        assert info["exp"] - info["iat"] == expected


@pytest.mark.parametrize(
    ("client_ttl", "expected"),
    [
        pytest.param(None, 77, id="M2M_AUTH_ACCESS_TOKEN_TTL sets the default"),
        pytest.param(5, 5, id="a client TTL overrides the server default"),
        pytest.param(100, 100, id="a client TTL equal to the configured maximum"),
    ],
)
def test_the_server_default_ttl_is_configurable(tuned: Api, client_ttl: int | None, expected: int) -> None:
    client = tuned.create_client(**({} if client_ttl is None else {"access_token_ttl": client_ttl}))
    assert tuned.token(client).json()["expires_in"] == expected


@pytest.mark.parametrize(
    "ttl", [101, 10**6, 0, -1], ids=["one over the maximum", "far over the maximum", "zero", "negative"]
)
def test_a_client_ttl_outside_1_to_the_maximum_is_refused(tuned: Api, ttl: int) -> None:
    created = tuned.admin("POST", "/admin/clients", json={"client_name": "x", "access_token_ttl": ttl})
    assert created.status_code == 400 and created.json()["error"] == "invalid_client_metadata"
    client = tuned.create_client()
    patched = tuned.admin("PATCH", f"/admin/clients/{client['client_id']}", json={"access_token_ttl": ttl})
    assert patched.status_code == 400 and patched.json()["error"] == "invalid_client_metadata"


def test_a_token_stops_being_active_once_it_expires(api: Api) -> None:
    # TTL 2 rather than 1: lifetimes are whole seconds, so a 1 s token may already be over when introspected.
    client = api.create_client(access_token_ttl=2)
    token = api.access_token(client)
    info = api.introspect(client, token).json()
    assert info["active"] is True
    time.sleep(max(0.0, info["exp"] - time.time()) + 0.3)
    expired = api.introspect(client, token)
    assert expired.status_code == 200
    assert expired.json() == {"active": False}


# --- secret rotation --------------------------------------------------------------------------


def _rotate(api: Api, client: Client, body: dict[str, Any] | None) -> dict[str, Any]:
    response = api.admin(
        "POST", f"/admin/clients/{client['client_id']}/secret", **({} if body is None else {"json": body})
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    rotated = response.json()
    assert rotated["client_id"] == client["client_id"]
    assert rotated["client_secret"] != client["client_secret"]
    return rotated


@pytest.mark.parametrize(
    ("body", "old_works", "grace"),
    [
        pytest.param({"grace_period": 0}, False, 0, id="a grace period of 0 retires the old secret at once"),
        pytest.param({"grace_period": 120}, True, 120, id="the old secret works during a grace period"),
        pytest.param(None, True, 3600, id="no body keeps the old secret for the default hour"),
        pytest.param({}, True, 3600, id="an empty object keeps the old secret for the default hour"),
    ],
)
def test_after_secret_rotation_the_new_secret_works_and_the_old_one_for_the_grace_period(
    api: Api, client: Client, body: dict[str, Any] | None, old_works: bool, grace: int
) -> None:
    before = int(time.time())
    rotated = _rotate(api, client, body)
    assert before + grace <= rotated["previous_secret_expires_at"] <= int(time.time()) + grace
    new = {"client_id": client["client_id"], "client_secret": rotated["client_secret"]}
    assert api.token(new).status_code == 200
    old = api.token(client)
    if old_works:
        assert old.status_code == 200, old.text
    else:
        assert_error(old, 401, "invalid_client")


def test_the_old_secret_stops_working_when_the_grace_period_ends(api: Api, client: Client) -> None:
    rotated = _rotate(api, client, {"grace_period": 2})
    assert api.token(client).status_code == 200
    time.sleep(max(0.0, rotated["previous_secret_expires_at"] - time.time()) + 0.3)
    assert_error(api.token(client), 401, "invalid_client")
    new = {"client_id": client["client_id"], "client_secret": rotated["client_secret"]}
    assert api.token(new).status_code == 200


def test_a_second_rotation_retires_the_first_secret_with_it(api: Api, client: Client) -> None:
    first = _rotate(api, client, {"grace_period": 600})
    second = _rotate(api, client, {"grace_period": 0})
    assert_error(api.token(client), 401, "invalid_client")
    assert_error(
        api.token({"client_id": client["client_id"], "client_secret": first["client_secret"]}), 401, "invalid_client"
    )
    assert api.token({"client_id": client["client_id"], "client_secret": second["client_secret"]}).status_code == 200


def test_rotating_the_secret_of_an_unknown_client_is_404(api: Api) -> None:
    response = api.admin("POST", "/admin/clients/no-such-client/secret", json={"grace_period": 0})
    assert response.status_code == 404 and response.json()["error"] == "not_found"
