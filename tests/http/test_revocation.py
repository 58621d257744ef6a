"""POST /oauth/revoke (RFC 7009), and revocation through the admin API and client lifecycle."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .._server import Api, basic_header

FORM = "application/x-www-form-urlencoded"
INACTIVE = {"active": False}

Client = dict[str, Any]


def post_revoke(api: Api, body: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return api.http.post("/oauth/revoke", content=body, headers={"Content-Type": FORM, **(headers or {})})


def is_active(api: Api, observer: Client, token: str) -> bool:
    response = api.introspect(observer, token)
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


@pytest.fixture
def owner(api: Api) -> Client:
    return api.create_client(scope="read write")


@pytest.fixture
def observer(api: Api) -> Client:
    """A third client that only introspects, so that revoking or disabling the owner does not affect it."""
    return api.create_client(client_name="observer")


# --- RFC 7009 endpoint ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("basic", id="with the Basic header"),
        pytest.param("post", id="with credentials in the form body"),
        pytest.param("hint", id="with token_type_hint=access_token"),
        pytest.param("wrong-hint", id="with a wrong token_type_hint (RFC 7009 §2.1: the server looks further)"),
    ],
)
def test_a_client_revokes_its_own_token(api: Api, owner: Client, observer: Client, how: str) -> None:
    token = api.access_token(owner)
    other = api.access_token(owner)
    headers = basic_header(owner["client_id"], owner["client_secret"])
    if how == "basic":
        response = post_revoke(api, f"token={token}", headers)
    elif how == "post":
        response = post_revoke(
            api, f"token={token}&client_id={owner['client_id']}&client_secret={owner['client_secret']}"
        )
    elif how == "hint":
        response = post_revoke(api, f"token={token}&token_type_hint=access_token", headers)
    else:
        response = post_revoke(api, f"token={token}&token_type_hint=refresh_token", headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.content == b""
    assert api.introspect(observer, token).json() == INACTIVE
    assert is_active(api, observer, other)  # only the named token
    assert api.revoke(owner, token).status_code == 200  # revoking again is not an error


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("m2m_at_" + "A" * 43, id="an unknown token of the right shape"),
        pytest.param("garbage", id="a word that is not a token"),
        pytest.param("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", id="an unsigned JWT"),
        pytest.param("x" * 9000, id="a token of 9000 characters"),
        pytest.param("%E2%9C%93", id="a non-ASCII token"),
    ],
)
def test_revoking_a_token_the_server_does_not_know_is_still_200(api: Api, owner: Client, token: str) -> None:
    response = post_revoke(api, f"token={token}", basic_header(owner["client_id"], owner["client_secret"]))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body", ["", "token=", "token_type_hint=access_token", "token=a&token=b"],
    ids=["an empty body", "an empty token", "a hint without a token", "a repeated token"],
)  # fmt: skip
def test_a_request_without_exactly_one_token_is_invalid_request(api: Api, owner: Client, body: str) -> None:
    response = post_revoke(api, body, basic_header(owner["client_id"], owner["client_secret"]))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


def test_a_client_cannot_revoke_another_clients_token(api: Api, owner: Client, observer: Client) -> None:
    intruder = api.create_client(scope="read write")
    token = api.access_token(owner)
    response = api.revoke(intruder, token)
    assert response.status_code == 200  # the same answer as for an unknown token: no oracle
    assert is_active(api, observer, token)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda c, t: {}, id="no credentials at all"),
        pytest.param(lambda c, t: basic_header(c["client_id"], "m2m_cs_wrong"), id="a wrong secret"),
        pytest.param(lambda c, t: basic_header("no-such-client", c["client_secret"]), id="an unknown client"),
        pytest.param(lambda c, t: {"Authorization": f"Bearer {t}"}, id="the token itself as a Bearer header"),
    ],
)
def test_an_unauthenticated_revocation_is_401_invalid_client_and_revokes_nothing(
    api: Api, owner: Client, observer: Client, headers: Callable[[Client, str], dict[str, str]]
) -> None:
    token = api.access_token(owner)
    response = post_revoke(api, f"token={token}", headers(owner, token))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" in response.headers
    assert is_active(api, observer, token)


def test_a_disabled_client_cannot_revoke_even_its_own_tokens(api: Api, owner: Client) -> None:
    token = api.access_token(owner)
    assert api.admin("PATCH", f"/admin/clients/{owner['client_id']}", json={"disabled": True}).status_code == 200
    response = api.revoke(owner, token)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


# --- admin revocation -----------------------------------------------------------------------------


def test_an_administrator_revokes_any_single_token(api: Api, owner: Client, observer: Client) -> None:
    token, kept = api.access_token(owner), api.access_token(owner)
    response = api.admin("POST", "/admin/tokens/revoke", json={"token": token})
    assert response.status_code == 200, response.text
    assert response.json() == {"revoked": True}
    assert api.introspect(observer, token).json() == INACTIVE
    assert is_active(api, observer, kept)
    assert api.admin("POST", "/admin/tokens/revoke", json={"token": token}).json() == {"revoked": False}


@pytest.mark.parametrize(
    "token",
    ["m2m_at_" + "A" * 43, "garbage"],
    ids=["an unknown token of the right shape", "a word that is not a token"],
)
def test_admin_revocation_of_an_unknown_token_says_nothing_was_revoked(api: Api, token: str) -> None:
    response = api.admin("POST", "/admin/tokens/revoke", json={"token": token})
    assert response.status_code == 200 and response.json() == {"revoked": False}


def test_an_administrator_revokes_every_token_of_one_client(api: Api, owner: Client, observer: Client) -> None:
    bystander = api.create_client()
    tokens = [api.access_token(owner) for _ in range(3)]
    already_revoked = api.access_token(owner)
    assert api.revoke(owner, already_revoked).status_code == 200
    untouched = api.access_token(bystander)
    response = api.admin("POST", f"/admin/clients/{owner['client_id']}/revoke-tokens")
    assert response.status_code == 200, response.text
    assert response.json() == {"revoked": 3}
    for token in tokens:
        assert api.introspect(observer, token).json() == INACTIVE
    assert is_active(api, observer, untouched)
    fresh = api.access_token(owner)  # the client itself keeps working
    assert is_active(api, observer, fresh)


def test_revoking_every_token_of_an_unknown_client_is_404(api: Api) -> None:
    response = api.admin("POST", "/admin/clients/no-such-client/revoke-tokens")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/admin/tokens/revoke", {"token": "m2m_at_" + "A" * 43}, id="single-token revocation"),
        pytest.param("/admin/clients/{client_id}/revoke-tokens", None, id="revocation of a client's tokens"),
    ],
)
def test_admin_revocation_needs_the_admin_token(
    api: Api, owner: Client, observer: Client, path: str, body: dict[str, str] | None
) -> None:
    token = api.access_token(owner)
    refusals = [
        ({}, 401, "invalid_token"),
        ({"Authorization": "Bearer not-the-admin-token"}, 401, "invalid_token"),
        ({"Authorization": f"Basic {base64.b64encode(b'admin:x').decode()}"}, 401, "invalid_token"),
        ({"Authorization": f"Bearer {token}"}, 403, "insufficient_scope"),  # a live token without m2m-auth:admin
    ]
    for headers, status, error in refusals:
        response = api.http.post(path.format(client_id=owner["client_id"]), json=body, headers=headers)
        assert response.status_code == status, response.text
        assert response.json()["error"] == error
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert is_active(api, observer, token)


def test_a_revoked_admin_scoped_access_token_no_longer_opens_the_admin_api(api: Api) -> None:
    automation = api.create_client(scope="m2m-auth:admin")
    token = api.access_token(automation)
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.http.get("/admin/clients", headers=bearer).status_code == 200
    assert api.revoke(automation, token).status_code == 200
    response = api.http.get("/admin/clients", headers=bearer)
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


# --- client lifecycle -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [
        pytest.param("PATCH", {"disabled": True}, 200, id="disabling a client"),
        pytest.param("DELETE", None, 204, id="deleting a client"),
    ],
)
def test_removing_a_client_makes_its_tokens_inactive_at_once(
    api: Api, owner: Client, observer: Client, method: str, body: dict[str, Any] | None, status: int
) -> None:
    tokens = [api.access_token(owner) for _ in range(2)]
    bystander = api.create_client()
    untouched = api.access_token(bystander)
    response = api.admin(method, f"/admin/clients/{owner['client_id']}", **({} if body is None else {"json": body}))
    assert response.status_code == status, response.text
    for token in tokens:
        assert api.introspect(observer, token).json() == INACTIVE
    assert is_active(api, observer, untouched)
    refused = api.token(owner)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
