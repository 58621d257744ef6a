"""Whatever arrives, the server answers with an RFC-shaped error, never a 5xx or a traceback.

Property tests against a real `m2m-auth serve` process per backend: arbitrary bodies, content
types, Authorization headers and repeated parameters at the OAuth endpoints, and arbitrary JSON at
the admin API (with the valid admin token, so the requests get past authentication).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .._server import ADMIN_TOKEN, Api, ServerProcess

# One connection pool for every example: a new client per example would measure TCP set-up, not the server.
HTTP = httpx.Client(timeout=30)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

FORM = "application/x-www-form-urlencoded"
OAUTH_PARAMS = [
    "grant_type", "scope", "audience", "resource", "client_id", "client_secret", "token", "token_type_hint",
    "client_assertion", "client_assertion_type",
]  # fmt: skip
# Escapes a lax decoder trips over: truncated, non-hex, NUL, invalid UTF-8, a lone surrogate, beyond U+10FFFF.
ODD_ESCAPES = [
    "%", "%2", "%G1", "%%", "%00", "%e9", "%C3%28", "%ED%A0%80", "%F4%90%80%80", "%FF%FE", "+", "%2B", "%26", "%3D",
]  # fmt: skip
# Characters that some layer may not hold: PostgreSQL text refuses NUL; the others are multi-byte or invisible.
NASTY = ["\x00", "a\x00b", "\u00e9", "\ufeff", "\u2028", "\U0001f600", " ", "\t", "\r\n"]
GRANT_TYPES = [
    "client_credentials", "authorization_code", "password", "refresh_token",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
]  # fmt: skip


@pytest.fixture(scope="module")
def target(server: ServerProcess) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    """The shared server and a real client of it, so some requests get past client authentication."""
    api = Api(server.url)
    client = api.create_client(client_name="fuzz target", scope="read write", audience=["svc-a", "svc-b"])
    yield server, client
    api.close()


# --- strategies --------------------------------------------------------------------------------

# Header values must be sendable at all: no control characters, no surrounding whitespace (h11 refuses them).
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_categories=["Cc"]), max_size=80)

text_piece = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40),
    st.sampled_from(ODD_ESCAPES),
    st.sampled_from(NASTY),
    st.sampled_from(GRANT_TYPES),
    st.integers(0, 0xFF).map(lambda b: f"%{b:02X}"),
)
form_value = st.lists(text_piece, max_size=6).map("".join)
huge_value = st.tuples(st.sampled_from(["a", "%", "%41", " ", "svc-a ", "read "]), st.integers(1_000, 24_000)).map(
    lambda p: p[0] * p[1]
)


def _raw(value: str) -> str:
    return value  # sent as written: percent-escapes and all


def _quoted(value: str) -> str:
    return quote(value, safe="")


form_pair = st.tuples(
    st.one_of(st.sampled_from(OAUTH_PARAMS), st.text(max_size=12)),
    st.one_of(form_value, huge_value, st.sampled_from(["", "read", "read write", "svc-a", "client_credentials"])),
    st.sampled_from([_raw, _quoted]),
)


def form_body(pairs: list[tuple[str, str, Any]], repeat: list[int]) -> bytes:
    parts = [f"{encode(name)}={encode(value)}" for name, value, encode in pairs]
    parts += [parts[i % len(parts)] for i in repeat] if parts else []  # RFC 6749 §3.2: repeats are refused
    return "&".join(parts).encode("utf-8", "surrogatepass")


content_types = st.one_of(
    st.sampled_from(
        [
            FORM,
            FORM + "; charset=utf-8",
            "APPLICATION/X-WWW-FORM-URLENCODED ; charset=ISO-8859-1",
            "application/json",
            "multipart/form-data; boundary=xyz",
            "text/plain",
            "application/x-www-form-urlencoded;;;",
            ";",
        ]
    ),
    header_text,
    st.none(),
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def authorization(client: dict[str, Any]) -> st.SearchStrategy[str | None]:
    client_id, secret = client["client_id"], client["client_secret"]
    return st.one_of(
        st.none(),
        st.binary(max_size=64).map(lambda b: "Basic " + _b64(b)),
        st.text(max_size=40).map(lambda s: "Basic " + _b64(s.encode("utf-8", "surrogatepass"))),
        form_value.map(lambda s: "Basic " + _b64(f"{s}:{s}".encode("utf-8", "surrogatepass"))),
        form_value.map(lambda s: "Basic " + _b64(f"{client_id}:{s}".encode("utf-8", "surrogatepass"))),
        st.just("Basic " + _b64(f"{client_id}:{secret}".encode())),
        st.just("Basic " + _b64(f"{client_id}:{secret}".encode())[:-2]),  # cut short when copied
        header_text.map(lambda s: "Basic " + s),
        header_text.map(lambda s: "Bearer " + s),
        st.sampled_from(
            ["Basic", "Basic ", "basic  " + _b64(b"a:b"), "Bearer", "Digest x=y", "Basic ====", "Basic Og=="]
        ),
        header_text,
    )


def _send(method: str, url: str, body: bytes | None, headers: dict[str, str | None]) -> httpx.Response:
    sendable = {}
    for name, value in headers.items():
        if value is None:
            continue
        value = value.strip(" \t")
        if value:
            sendable[name] = value.encode("latin-1", "replace")
    return HTTP.request(method, url, content=body, headers=sendable)


def assert_well_formed(response: httpx.Response, *, empty_ok: bool = False) -> None:
    """The property: no 5xx, no traceback, and every 4xx an RFC 6749 §5.2-shaped JSON error."""
    request = response.request
    where = f"{request.method} {request.url} -> {response.status_code}: {response.text[:500]!r}"
    assert response.status_code < 500, where
    assert "Traceback" not in response.text and 'File "' not in response.text, where
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], where
    elif response.content or not empty_ok:
        response.json()


@st.composite
def oauth_request(draw: st.DrawFn, client: dict[str, Any]) -> tuple[bytes, dict[str, str | None]]:
    kind = draw(st.sampled_from(["form", "form", "form", "binary", "text", "json"]))
    if kind == "form":
        body = form_body(draw(st.lists(form_pair, max_size=8)), draw(st.lists(st.integers(0, 7), max_size=2)))
    elif kind == "binary":
        body = draw(st.binary(max_size=2048))
    elif kind == "text":
        body = draw(st.text(max_size=400)).encode("utf-8", "surrogatepass")
    else:
        body = json.dumps(draw(json_values)).encode()
    if draw(st.booleans()):  # keep some requests near the happy path so they get past the first checks
        body = b"grant_type=client_credentials&" + body
    headers: dict[str, str | None] = {
        "Content-Type": draw(st.one_of(st.just(FORM), content_types)),
        "Authorization": draw(authorization(client)),
    }
    return body, headers


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


# --- OAuth endpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
@FUZZ
@given(data=st.data())
def test_oauth_endpoints_answer_every_request_with_an_oauth_error_or_success_never_a_5xx(
    target: tuple[ServerProcess, dict[str, Any]], path: str, data: st.DataObject
) -> None:
    server, client = target
    body, headers = data.draw(oauth_request(client))
    response = _send("POST", server.url + path, body, headers)
    assert_well_formed(response, empty_ok=path == "/oauth/revoke")
    if path == "/oauth/token" and response.status_code == 200:
        assert response.json()["token_type"] == "Bearer"


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["scope", "audience", "resource", "token", "token_type_hint", "client_id"]),
        st.one_of(form_value, huge_value, st.text(max_size=200)),
        max_size=4,
    ),
    repeat=st.lists(st.sampled_from(["scope", "audience", "resource", "token", "grant_type"]), max_size=2),
    basic=st.booleans(),
)
def test_authenticated_requests_with_arbitrary_parameters_never_get_a_5xx(
    target: tuple[ServerProcess, dict[str, Any]], path: str, params: dict[str, str], repeat: list[str], basic: bool
) -> None:
    # With valid client credentials every parameter check behind authentication is reached.
    server, client = target
    pairs = [("grant_type", "client_credentials"), *params.items(), *((name, "x") for name in repeat)]
    headers: dict[str, str | None] = {"Content-Type": FORM}
    if basic:
        headers["Authorization"] = "Basic " + _b64(f"{client['client_id']}:{client['client_secret']}".encode())
    else:
        pairs += [("client_id", client["client_id"]), ("client_secret", client["client_secret"])]
    body = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs).encode()
    response = _send("POST", server.url + path, body, headers)
    assert_well_formed(response, empty_ok=path == "/oauth/revoke")


credential_text = st.one_of(form_value, st.sampled_from(NASTY), st.text(max_size=1100))


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
@FUZZ
@given(data=st.data(), post=st.booleans())
def test_arbitrary_client_credentials_in_a_well_formed_request_are_refused_as_invalid_client(
    target: tuple[ServerProcess, dict[str, Any]], path: str, data: st.DataObject, post: bool
) -> None:
    # The body is fine, so whatever happens is decided by client authentication alone.
    server, client = target
    pairs = [("grant_type", "client_credentials"), ("token", "m2m_at_" + "A" * 43)]
    headers: dict[str, str | None] = {"Content-Type": FORM}
    if post:
        pairs += [("client_id", data.draw(credential_text)), ("client_secret", data.draw(credential_text))]
    else:
        headers["Authorization"] = data.draw(authorization(client))
    body = "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs).encode()
    response = _send("POST", server.url + path, body, headers)
    assert_well_formed(response, empty_ok=path == "/oauth/revoke")
    if response.status_code == 401:
        assert response.json()["error"] == "invalid_client"
        assert response.headers["WWW-Authenticate"].startswith("Basic")


# --- admin API ----------------------------------------------------------------------------------


def _fuzz_client_id(value: str) -> str:
    # Ids the fuzzer may register or change start with "fuzz-", so other tests' clients are never touched.
    return "fuzz-" + value


client_fields = st.fixed_dictionaries(
    {},
    optional={
        "client_name": st.one_of(st.text(max_size=300), st.sampled_from(NASTY), json_scalars),
        "client_id": st.one_of(st.text(max_size=140).map(_fuzz_client_id), json_scalars),
        "scope": st.one_of(form_value, st.text(max_size=50), json_scalars, st.lists(st.text(max_size=10), max_size=3)),
        "audience": st.one_of(st.lists(st.one_of(st.text(max_size=600), json_scalars), max_size=70), json_scalars),
        "grant_types": st.one_of(st.lists(st.sampled_from([*GRANT_TYPES, ""]), max_size=3), json_scalars),
        "token_endpoint_auth_method": st.one_of(
            st.sampled_from(["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]), json_scalars
        ),
        "access_token_format": st.one_of(st.sampled_from(["opaque", "jwt", "JWT"]), json_scalars),
        "access_token_ttl": st.one_of(
            st.integers(-(2**66), 2**66), st.sampled_from([0, 1, 86400, 86401]), json_scalars
        ),
        "metadata": st.one_of(st.dictionaries(st.text(max_size=70), json_values, max_size=5), json_values),
        "disabled": json_scalars,
        "jwks": json_values,
        "grace_period": st.one_of(st.integers(-(2**66), 2**66), json_scalars),
        "token": st.one_of(st.text(max_size=100), st.just("m2m_at_" + "A" * 43), json_scalars),
        "unknown_field": json_values,
    },
)

admin_body = st.one_of(
    client_fields.map(lambda d: (json.dumps(d).encode(), "application/json")),
    json_values.map(lambda v: (json.dumps(v).encode(), "application/json")),
    st.tuples(st.binary(max_size=512), st.one_of(st.just("application/json"), content_types)),
    st.just((b"", "application/json")),
    st.just((b"[" * 2000, "application/json")),  # deeper than the JSON parser's nesting limit
    st.just((b'{"client_name": "' + b"x" * 70_000 + b'"}', "application/json")),  # over the body limit
)

client_path_id = st.one_of(
    st.text(max_size=40).map(lambda s: quote(_fuzz_client_id(s), safe="")),
    st.lists(st.sampled_from([*ODD_ESCAPES, "a", "."]), max_size=4).map(lambda parts: "fuzz-" + "".join(parts)),
    st.sampled_from(NASTY).map(lambda s: quote(_fuzz_client_id(s), safe="")),
)

admin_route = st.one_of(
    st.just(("POST", "/admin/clients")),
    client_path_id.map(lambda i: ("PATCH", f"/admin/clients/{i}")),
    client_path_id.map(lambda i: ("GET", f"/admin/clients/{i}")),
    client_path_id.map(lambda i: ("DELETE", f"/admin/clients/{i}")),
    client_path_id.map(lambda i: ("POST", f"/admin/clients/{i}/secret")),
    client_path_id.map(lambda i: ("POST", f"/admin/clients/{i}/revoke-tokens")),
    st.just(("POST", "/admin/tokens/revoke")),
    st.just(("POST", "/admin/tokens/explain")),
)


@FUZZ
@given(route=admin_route, body=admin_body)
def test_admin_api_answers_arbitrary_json_with_an_error_body_never_a_5xx(
    target: tuple[ServerProcess, dict[str, Any]], route: tuple[str, str], body: tuple[bytes, str | None]
) -> None:
    server, _ = target
    method, path = route
    content, content_type = body
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": content_type}
    response = _send(method, server.url + path, content, headers)
    assert_well_formed(response, empty_ok=method == "DELETE")
