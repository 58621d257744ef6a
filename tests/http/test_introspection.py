"""POST /oauth/introspect (RFC 7662): who may ask, what an active token says, and {"active": false} otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from .._server import Api, ServerProcess, basic_header

FORM = "application/x-www-form-urlencoded"
INTROSPECT_SCOPE = "m2m-auth:introspect"
INACTIVE = {"active": False}

Client = dict[str, Any]


def post_introspect(api: Api, body: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return api.http.post("/oauth/introspect", content=body, headers={"Content-Type": FORM, **(headers or {})})


def assert_inactive(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == INACTIVE


@pytest.fixture
def owner(api: Api) -> Client:
    return api.create_client(scope="read write", audience=["https://api-a.example"])


@pytest.fixture
def caller(api: Api) -> Client:
    """A resource server: a client of its own, with no scopes, introspecting other clients' tokens."""
    return api.create_client(client_name="resource server")


@pytest.fixture(scope="module")
def scoped(backend: str, database_factory: Callable[[str], str]) -> Iterator[Api]:
    """A server that lets only clients allowed scope m2m-auth:introspect call introspection."""
    proc = ServerProcess(database_factory(backend), introspection_requires_scope=True).start()
    api = Api(proc.url)
    yield api
    api.close()
    proc.stop()


# --- the caller authenticates ------------------------------------------------------------------


def _disable(api: Api, client: Client) -> None:
    assert api.admin("PATCH", f"/admin/clients/{client['client_id']}", json={"disabled": True}).status_code == 200


@pytest.mark.parametrize(
    ("setup", "headers", "fields"),
    [
        pytest.param(None, lambda c, t: {}, "", id="no credentials at all"),
        pytest.param(None, lambda c, t: basic_header(c["client_id"], "m2m_cs_wrong"), "", id="a wrong secret"),
        pytest.param(None, lambda c, t: basic_header("no-such-client", c["client_secret"]), "", id="an unknown client"),
        pytest.param(None, lambda c, t: {}, "&client_id=no-such-client&client_secret=x", id="an unknown client (form)"),
        pytest.param(None, lambda c, t: {"Authorization": f"Bearer {t}"}, "", id="the token itself as a Bearer header"),
        pytest.param(None, lambda c, t: {"Authorization": "Basic ###"}, "", id="a malformed Basic header"),
        pytest.param(
            _disable, lambda c, t: basic_header(c["client_id"], c["client_secret"]), "", id="a disabled caller"
        ),
    ],
)
def test_an_unauthenticated_caller_gets_401_invalid_client_and_learns_nothing(
    api: Api,
    owner: Client,
    caller: Client,
    setup: Callable[[Api, Client], None] | None,
    headers: Callable[[Client, str], dict[str, str]],
    fields: str,
) -> None:
    token = api.access_token(owner)
    if setup is not None:
        setup(api, caller)
    response = post_introspect(api, f"token={token}{fields}", headers(caller, token))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert "active" not in response.json()
    assert response.headers["www-authenticate"].lower().startswith("basic")
    assert api.introspect(owner, token).json()["active"] is True  # the refused call changed nothing


# --- an active token ------------------------------------------------------------------------------


def test_an_active_token_has_exactly_the_rfc_7662_fields_and_the_clients_metadata(
    api: Api, server: ServerProcess, caller: Client
) -> None:
    owner = api.create_client(
        scope="read write", audience=["https://api-a.example"], metadata={"team": "payments", "tier": 2}
    )
    issued = api.token(owner, scope="read").json()
    response = api.introspect(caller, issued["access_token"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {
        "active",
        "scope",
        "client_id",
        "sub",
        "aud",
        "iss",
        "exp",
        "iat",
        "token_type",
        "team",
        "tier",
    }
    assert body["active"] is True
    assert body["scope"] == "read"
    assert body["client_id"] == body["sub"] == owner["client_id"]
    assert body["aud"] == "https://api-a.example"
    assert body["iss"] == server.url
    assert body["token_type"] == "Bearer"
    assert isinstance(body["iat"], int) and isinstance(body["exp"], int)
    assert body["exp"] - body["iat"] == issued["expires_in"]
    assert body["team"] == "payments" and body["tier"] == 2


def test_a_token_for_several_audiences_lists_them_all(api: Api, caller: Client) -> None:
    owner = api.create_client(audience=["https://api-a.example", "https://api-b.example"])
    body = api.introspect(caller, api.access_token(owner)).json()
    assert sorted(body["aud"]) == ["https://api-a.example", "https://api-b.example"]


@pytest.mark.parametrize(
    "who",
    ["owner", "caller", "post"],
    ids=["the token's own client", "any other active client", "another client authenticating in the form body"],
)
def test_by_default_any_authenticated_client_may_introspect_any_token(
    api: Api, owner: Client, caller: Client, who: str
) -> None:
    token = api.access_token(owner)
    if who == "post":
        response = post_introspect(
            api, f"token={token}&client_id={caller['client_id']}&client_secret={caller['client_secret']}"
        )
    else:
        response = api.introspect(owner if who == "owner" else caller, token)
    assert response.status_code == 200, response.text
    assert response.json()["active"] is True
    assert response.json()["client_id"] == owner["client_id"]


@pytest.mark.parametrize(
    "hint",
    ["access_token", "refresh_token", "something_else"],
    ids=["a correct token_type_hint", "a wrong token_type_hint", "an unknown token_type_hint"],
)
def test_the_token_type_hint_does_not_change_the_answer(api: Api, owner: Client, caller: Client, hint: str) -> None:
    token = api.access_token(owner)
    headers = basic_header(caller["client_id"], caller["client_secret"])
    response = post_introspect(api, f"token={token}&token_type_hint={hint}", headers)
    assert response.status_code == 200 and response.json()["active"] is True


# --- introspection_requires_scope ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller_scope", "token_kind", "allowed"),
    [
        pytest.param(INTROSPECT_SCOPE, "other", True, id="a caller allowed the introspect scope"),
        pytest.param(f"read {INTROSPECT_SCOPE}", "other", True, id="a caller allowed it among other scopes"),
        pytest.param(INTROSPECT_SCOPE, "garbage", True, id="a caller allowed it still gets inactive for garbage"),
        pytest.param("", "other", False, id="a caller without scopes is refused"),
        pytest.param("read write", "other", False, id="a caller with other scopes is refused"),
        pytest.param("read", "own", False, id="a caller without it may not introspect even its own token"),
        pytest.param("read", "garbage", False, id="a caller without it is refused before the token is looked at"),
    ],
)
def test_when_introspection_requires_scope_only_callers_allowed_it_may_introspect(
    scoped: Api, caller_scope: str, token_kind: str, allowed: bool
) -> None:
    owner = scoped.create_client(scope="read")
    caller = scoped.create_client(scope=caller_scope)
    token = {"other": scoped.access_token(owner), "own": scoped.access_token(caller), "garbage": "not-a-token"}[
        token_kind
    ]
    response = scoped.introspect(caller, token)
    if allowed:
        assert response.status_code == 200, response.text
        assert response.json()["active"] is (token_kind != "garbage")
    else:
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "unauthorized_client"
        assert "active" not in response.json()


# --- every token that is not active gets exactly {"active": false} ------------------------------


def _revoke(api: Api, owner: Client, token: str) -> str:
    assert api.revoke(owner, token).status_code == 200
    return token


def _admin_revoke(api: Api, owner: Client, token: str) -> str:
    assert api.admin("POST", "/admin/tokens/revoke", json={"token": token}).json() == {"revoked": True}
    return token


def _disable_owner(api: Api, owner: Client, token: str) -> str:
    _disable(api, owner)
    return token


def _disable_then_enable_owner(api: Api, owner: Client, token: str) -> str:
    _disable(api, owner)
    assert api.admin("PATCH", f"/admin/clients/{owner['client_id']}", json={"disabled": False}).status_code == 200
    assert api.token(owner).status_code == 200  # enabled again, and able to get new tokens
    return token


def _delete_owner(api: Api, owner: Client, token: str) -> str:
    assert api.admin("DELETE", f"/admin/clients/{owner['client_id']}").status_code == 204
    return token


def _recreate_owner(api: Api, owner: Client, token: str) -> str:
    _delete_owner(api, owner, token)
    api.create_client(client_id=owner["client_id"], scope="read write")
    return token


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda api, owner, token: "m2m_at_" + "A" * 43, id="an unknown token of the right shape"),
        pytest.param(lambda api, owner, token: token[:-1], id="a token cut short by one character"),
        pytest.param(lambda api, owner, token: token + "A", id="a token with one character too many"),
        pytest.param(lambda api, owner, token: token.removeprefix("m2m_at_"), id="a token without its prefix"),
        pytest.param(lambda api, owner, token: "ory_at_" + token[7:], id="a token with another server's prefix"),
        pytest.param(lambda api, owner, token: token.upper(), id="a token in another case"),
        pytest.param(lambda api, owner, token: f"Bearer {token}", id="a token with its Bearer scheme"),
        pytest.param(lambda api, owner, token: "garbage", id="a word that is not a token"),
        pytest.param(lambda api, owner, token: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", id="an unsigned JWT (alg none)"),
        pytest.param(
            lambda api, owner, token: "eyJhbGciOiJSUzI1NiIsImtpZCI6Ii4uLy4uL2V0Yy9wYXNzd2QifQ.e30.c2ln",
            id="a JWT whose kid is a path",
        ),
        pytest.param(lambda api, owner, token: "x" * 9000, id="a token of 9000 characters"),
        pytest.param(lambda api, owner, token: owner["client_secret"], id="a client secret instead of a token"),
        pytest.param(_revoke, id="a token revoked by its client"),
        pytest.param(_admin_revoke, id="a token revoked by an administrator"),
        pytest.param(_disable_owner, id="a token of a disabled client"),
        pytest.param(_disable_then_enable_owner, id="a token of a client disabled and enabled again"),
        pytest.param(_delete_owner, id="a token of a deleted client"),
        pytest.param(_recreate_owner, id="a token of a deleted client whose id was registered again"),
    ],
)
def test_a_token_that_is_not_active_gets_exactly_active_false(
    api: Api, owner: Client, caller: Client, make: Callable[[Api, Client, str], str]
) -> None:
    token = make(api, owner, api.access_token(owner))
    assert_inactive(api.introspect(caller, token))


def test_an_expired_token_gets_exactly_active_false(api: Api, caller: Client) -> None:
    owner = api.create_client(access_token_ttl=1)
    token = api.access_token(owner)
    time.sleep(2.1)  # lifetimes are whole seconds: a 1 s token is over after at most 2 s
    assert_inactive(api.introspect(caller, token))


# --- request syntax -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("", id="an empty body"),
        pytest.param("token_type_hint=access_token", id="a hint without a token"),
        pytest.param("token=", id="an empty token"),
        pytest.param("tokens=m2m_at_x", id="a misspelt parameter"),
        pytest.param("token=a&token=b", id="a repeated token"),
    ],
)
def test_a_request_without_exactly_one_token_is_invalid_request(api: Api, caller: Client, body: str) -> None:
    response = post_introspect(api, body, basic_header(caller["client_id"], caller["client_secret"]))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
