"""The admin API (/admin/clients): RFC 7591 client metadata, validation, admin authentication,
secret rotation, disabling and deleting clients, and how secrets are stored."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .._server import Api, ServerProcess

SECRET_SHAPE = re.compile(r"m2m_cs_[A-Za-z0-9_-]{43}")  # 43 URL-safe base64 characters: 256 random bits
ADMIN_SCOPE = "m2m-auth:admin"


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    return body


def assert_active(api: Api, caller: dict[str, Any], token: str, active: bool) -> None:
    response = api.introspect(caller, token)
    assert response.status_code == 200, response.text
    assert response.json()["active"] is active, response.json()


# --- registration --------------------------------------------------------------------------------


def test_registration_answers_201_with_the_stored_fields_and_a_secret_shown_once(api: Api) -> None:
    fields = {
        "client_name": "billing worker",
        "scope": "invoices:read invoices:write",
        "audience": ["billing-api", "ledger-api"],
        "access_token_ttl": 120,
        "token_endpoint_auth_method": "client_secret_post",
        "metadata": {"tenant": "acme", "tier": 2},
    }
    response = api.admin("POST", "/admin/clients", json=fields)

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    for key, value in fields.items():
        assert created[key] == value, key
    assert created["grant_types"] == ["client_credentials"]
    assert created["disabled"] is False
    assert SECRET_SHAPE.fullmatch(created["client_secret"]), created["client_secret"]
    assert response.headers["location"] == f"/admin/clients/{created['client_id']}"

    shown = api.admin("GET", f"/admin/clients/{created['client_id']}").json()
    listed = [c for c in api.admin("GET", "/admin/clients").json()["clients"] if c["client_id"] == created["client_id"]]
    assert listed == [shown]
    assert "client_secret" not in shown
    assert {k: v for k, v in created.items() if k != "client_secret"} == shown
    assert created["client_secret"] not in api.admin("GET", "/admin/clients").text


def test_registration_defaults_are_the_documented_ones(api: Api) -> None:
    created = api.create_client(client_name="minimal")
    assert created["grant_types"] == ["client_credentials"]
    assert created["token_endpoint_auth_method"] == "client_secret_basic"
    assert created["scope"] == "" and created["audience"] == [] and created["metadata"] == {}
    assert created["client_id"] and SECRET_SHAPE.fullmatch(created["client_secret"])


def test_every_registration_gets_its_own_client_id_and_secret(api: Api) -> None:
    first, second = api.create_client(), api.create_client()
    assert first["client_id"] != second["client_id"]
    assert first["client_secret"] != second["client_secret"]


def test_a_chosen_client_id_is_kept_and_cannot_be_registered_twice(api: Api) -> None:
    client_id = f"svc-{time.time_ns()}"
    created = api.create_client(client_id=client_id)
    assert created["client_id"] == client_id
    assert api.access_token(created)

    duplicate = api.admin("POST", "/admin/clients", json={"client_name": "again", "client_id": client_id})
    body = assert_error(duplicate, 400, "invalid_client_metadata")
    assert "client_id" in body["error_description"]
    # the first registration is untouched: its secret still works
    assert api.access_token(created)


def test_metadata_keys_become_claims_in_the_introspection_answer(api: Api) -> None:
    client = api.create_client(metadata={"tenant": "acme", "tier": 2, "labels": ["a", "b"]})
    body = api.introspect(client, api.access_token(client)).json()
    assert body["active"] is True
    assert (body["tenant"], body["tier"], body["labels"]) == ("acme", 2, ["a", "b"])
    assert body["sub"] == client["client_id"]


# --- validation ----------------------------------------------------------------------------------

NAME = {"client_name": "svc"}


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        pytest.param({}, "client_name", id="should fail because client_name is missing"),
        pytest.param({"client_name": ""}, "client_name", id="should fail because client_name is empty"),
        pytest.param({"client_name": 42}, "client_name", id="should fail because client_name is not a string"),
        pytest.param({**NAME, "scope": ["read"]}, "scope", id="should fail because scope is a list, not a string"),
        pytest.param({**NAME, "scope": 'read "write"'}, "scope", id="should fail because a scope has a quote in it"),
        pytest.param({**NAME, "scope": "read\\write"}, "scope", id="should fail because a scope has a backslash in it"),
        pytest.param({**NAME, "scope": "lecture-é"}, "scope", id="should fail because a scope is not ASCII"),
        pytest.param({**NAME, "scope": "read\twrite"}, "scope", id="should fail because scopes are split by a tab"),
        pytest.param({**NAME, "audience": "billing-api"}, "audience", id="should fail because audience is not a list"),
        pytest.param({**NAME, "audience": [""]}, "audience", id="should fail because an audience is empty"),
        pytest.param({**NAME, "audience": [7]}, "audience", id="should fail because an audience is not a string"),
        pytest.param({**NAME, "access_token_ttl": 0}, "access_token_ttl", id="should fail because ttl is 0"),
        pytest.param({**NAME, "access_token_ttl": -5}, "access_token_ttl", id="should fail because ttl is negative"),
        pytest.param({**NAME, "access_token_ttl": "60"}, "access_token_ttl", id="should fail because ttl is a string"),
        pytest.param({**NAME, "access_token_ttl": 1.5}, "access_token_ttl", id="should fail because ttl is a float"),
        pytest.param({**NAME, "access_token_ttl": True}, "access_token_ttl", id="should fail because ttl is a bool"),
        pytest.param(
            {**NAME, "access_token_ttl": 86401}, "access_token_ttl", id="should fail because ttl is above one day"
        ),
        pytest.param({**NAME, "metadata": ["a"]}, "metadata", id="should fail because metadata is not an object"),
        pytest.param({**NAME, "metadata": {"sub": "x"}}, "sub", id="should fail because metadata overrides sub"),
        pytest.param(
            {**NAME, "metadata": {"scope": "admin"}}, "scope", id="should fail because metadata overrides scope"
        ),
        pytest.param({**NAME, "metadata": {"exp": 9999999999}}, "exp", id="should fail because metadata overrides exp"),
        pytest.param(
            {**NAME, "metadata": {"client_id": "other"}},
            "client_id",
            id="should fail because metadata overrides client_id",
        ),
        pytest.param(
            {**NAME, "metadata": {"active": True}}, "active", id="should fail because metadata overrides active"
        ),
        pytest.param(
            {**NAME, "grant_types": ["authorization_code"]},
            "grant_types",
            id="should fail because the grant is unsupported",
        ),
        pytest.param(
            {**NAME, "grant_types": "client_credentials"},
            "grant_types",
            id="should fail because grant_types is a string",
        ),
        pytest.param(
            {**NAME, "token_endpoint_auth_method": "none"},
            "token_endpoint_auth_method",
            id="should fail because public clients (auth method none) are not supported",
        ),
        pytest.param(
            {**NAME, "token_endpoint_auth_method": "tls_client_auth"},
            "token_endpoint_auth_method",
            id="should fail because the auth method is unsupported",
        ),
        pytest.param({**NAME, "client_id": "has space"}, "client_id", id="should fail because client_id has a space"),
        pytest.param({**NAME, "client_id": "a/b"}, "client_id", id="should fail because client_id has a slash"),
        pytest.param({**NAME, "client_id": ""}, "client_id", id="should fail because client_id is empty"),
        pytest.param(
            {**NAME, "redirect_uris": ["https://x"]}, "unknown field", id="should fail because of an unknown field"
        ),
        pytest.param(
            {**NAME, "client_secret": "mine"}, "unknown field", id="should fail because the secret cannot be chosen"
        ),
        pytest.param(
            {**NAME, "disabled": True}, "unknown field", id="should fail because disabled is not a creation field"
        ),
    ],
)
def test_invalid_registration_is_invalid_client_metadata_naming_the_problem(
    api: Api, body: dict[str, Any], mentions: str
) -> None:
    before = len(api.admin("GET", "/admin/clients").json()["clients"])
    error = assert_error(api.admin("POST", "/admin/clients", json=body), 400, "invalid_client_metadata")
    assert mentions in error["error_description"], error
    assert len(api.admin("GET", "/admin/clients").json()["clients"]) == before


@pytest.mark.parametrize(
    ("content", "content_type", "error"),
    [
        pytest.param(b"[]", "application/json", "invalid_client_metadata", id="should fail because the body is a list"),
        pytest.param(
            b'"svc"', "application/json", "invalid_client_metadata", id="should fail because the body is a string"
        ),
        pytest.param(
            b"{not json", "application/json", "invalid_request", id="should fail because the body is not JSON"
        ),
        pytest.param(
            b"client_name=svc",
            "application/x-www-form-urlencoded",
            "invalid_request",
            id="should fail because the body is a form",
        ),
        pytest.param(b"", "application/json", "invalid_request", id="should fail because the body is empty"),
    ],
)
def test_a_registration_body_that_is_not_a_json_object_is_a_400(
    api: Api, content: bytes, content_type: str, error: str
) -> None:
    headers = {**api.admin_headers, "Content-Type": content_type}
    response = api.http.post("/admin/clients", content=content, headers=headers)
    assert_error(response, 400, error)


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        pytest.param({"client_name": None}, "client_name", id="should fail because client_name is set to null"),
        pytest.param({"scope": None}, "scope", id="should fail because scope is set to null"),
        pytest.param({"disabled": "yes"}, "disabled", id="should fail because disabled is not a bool"),
        pytest.param({"access_token_ttl": 0}, "access_token_ttl", id="should fail because ttl is 0"),
        pytest.param({"access_token_ttl": 86401}, "access_token_ttl", id="should fail because ttl is above one day"),
        pytest.param({"metadata": {"iss": "evil"}}, "iss", id="should fail because metadata overrides iss"),
        pytest.param({"scope": "a\u00a0b"}, "scope", id="should fail because a scope has a non-breaking space"),
        pytest.param({"client_id": "renamed"}, "unknown field", id="should fail because client_id cannot change"),
        pytest.param({"client_secret": "mine"}, "unknown field", id="should fail because the secret cannot be set"),
    ],
)
def test_invalid_update_is_invalid_client_metadata_and_changes_nothing(
    api: Api, body: dict[str, Any], mentions: str
) -> None:
    client = api.create_client(scope="read")
    path = f"/admin/clients/{client['client_id']}"
    before = api.admin("GET", path).json()
    error = assert_error(api.admin("PATCH", path, json=body), 400, "invalid_client_metadata")
    assert mentions in error["error_description"], error
    assert api.admin("GET", path).json() == before


def test_one_day_is_the_default_maximum_ttl(api: Api) -> None:
    client = api.create_client(access_token_ttl=86400)
    assert api.token(client).json()["expires_in"] == 86400


@pytest.fixture(scope="module")
def small_ttl_server(backend: str, database_factory: Callable[[str], str]) -> Iterator[Api]:
    proc = ServerProcess(database_factory(backend), max_access_token_ttl=100).start()
    client = Api(proc.url)
    yield client
    client.close()
    proc.stop()


@pytest.mark.parametrize(
    ("ttl", "accepted"),
    [
        pytest.param(1, True, id="should accept one second, the minimum"),
        pytest.param(100, True, id="should accept the configured maximum"),
        pytest.param(101, False, id="should refuse one second above the configured maximum"),
        pytest.param(86400, False, id="should refuse the default maximum when a smaller one is configured"),
    ],
)
def test_access_token_ttl_is_bounded_by_the_configured_maximum(small_ttl_server: Api, ttl: int, accepted: bool) -> None:
    api = small_ttl_server
    response = api.admin("POST", "/admin/clients", json={"client_name": "ttl", "access_token_ttl": ttl})
    if accepted:
        assert response.status_code == 201, response.text
        assert api.token(response.json()).json()["expires_in"] == ttl
    else:
        body = assert_error(response, 400, "invalid_client_metadata")
        assert "access_token_ttl" in body["error_description"] and "100" in body["error_description"]

    client = api.create_client(access_token_ttl=50)
    update = api.admin("PATCH", f"/admin/clients/{client['client_id']}", json={"access_token_ttl": ttl})
    if accepted:
        assert update.status_code == 200 and update.json()["access_token_ttl"] == ttl
    else:
        assert_error(update, 400, "invalid_client_metadata")
        assert api.admin("GET", f"/admin/clients/{client['client_id']}").json()["access_token_ttl"] == 50


def test_a_client_without_its_own_ttl_gets_no_more_than_the_configured_maximum(small_ttl_server: Api) -> None:
    # the server default (600 s) is above this server's maximum (100 s): the maximum wins
    client = small_ttl_server.create_client()
    assert client["access_token_ttl"] is None
    assert small_ttl_server.token(client).json()["expires_in"] == 100


# --- read, update, delete ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        pytest.param("GET", "", None, id="showing an unknown client is 404"),
        pytest.param("PATCH", "", {"client_name": "x"}, id="updating an unknown client is 404"),
        pytest.param("PATCH", "", {"disabled": True}, id="disabling an unknown client is 404"),
        pytest.param("DELETE", "", None, id="deleting an unknown client is 404"),
        pytest.param("POST", "/secret", {}, id="rotating the secret of an unknown client is 404"),
    ],
)
def test_an_unknown_client_is_a_json_404(api: Api, method: str, suffix: str, body: Any) -> None:
    response = api.admin(method, f"/admin/clients/no-such-client-{time.time_ns()}{suffix}", json=body)
    assert_error(response, 404, "not_found")


def test_update_changes_only_the_given_fields_and_applies_at_once(api: Api) -> None:
    client = api.create_client(client_name="before", scope="read", metadata={"team": "a"})
    path = f"/admin/clients/{client['client_id']}"
    assert api.token(client, scope="write").json()["error"] == "invalid_scope"

    response = api.admin("PATCH", path, json={"scope": "read write", "client_name": "after"})

    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["scope"], updated["client_name"], updated["metadata"]) == ("read write", "after", {"team": "a"})
    assert "client_secret" not in updated
    assert api.admin("GET", path).json() == updated
    assert api.token(client, scope="write").status_code == 200  # the old secret still works


def test_disabling_revokes_tokens_at_once_and_enabling_does_not_revive_them(api: Api) -> None:
    caller = api.create_client()
    client = api.create_client()
    token = api.access_token(client)
    path = f"/admin/clients/{client['client_id']}"

    disabled = api.admin("PATCH", path, json={"disabled": True})

    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert_active(api, caller, token, False)
    assert_error(api.token(client), 401, "invalid_client")

    enabled = api.admin("PATCH", path, json={"disabled": False})
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    assert_active(api, caller, token, False)
    assert_active(api, caller, api.access_token(client), True)


def test_deleting_revokes_tokens_at_once_and_frees_the_client_id(api: Api) -> None:
    caller = api.create_client()
    client = api.create_client(client_id=f"deleted-{time.time_ns()}")
    token = api.access_token(client)
    path = f"/admin/clients/{client['client_id']}"

    response = api.admin("DELETE", path)

    assert response.status_code == 204 and response.content == b""
    assert_error(api.admin("GET", path), 404, "not_found")
    assert client["client_id"] not in {c["client_id"] for c in api.admin("GET", "/admin/clients").json()["clients"]}
    assert_active(api, caller, token, False)
    assert_error(api.token(client), 401, "invalid_client")

    # registering the same client_id again does not revive the old secret or the old tokens
    again = api.create_client(client_id=client["client_id"])
    assert_active(api, caller, token, False)
    assert_error(api.token(client), 401, "invalid_client")
    assert api.access_token(again)


# --- admin authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="should fail because there is no Authorization header"),
        pytest.param("Bearer not-the-admin-token", id="should fail because the bearer token is garbage"),
        pytest.param("Bearer", id="should fail because the bearer token is empty"),
        pytest.param("Basic dGVzdDp0ZXN0", id="should fail because Basic is not a bearer token"),
        pytest.param("m2m_at_" + "A" * 43, id="should fail because the scheme is missing"),
        pytest.param("Bearer m2m_at_" + "A" * 43, id="should fail because the access token is unknown"),
    ],
)
def test_unauthenticated_admin_requests_are_401_with_a_bearer_challenge(api: Api, authorization: str | None) -> None:
    client = api.create_client()
    headers = {} if authorization is None else {"Authorization": authorization}
    path = f"/admin/clients/{client['client_id']}"
    for method, url, body in [
        ("GET", "/admin/clients", None),
        ("POST", "/admin/clients", {"client_name": "intruder"}),
        ("DELETE", path, None),
        ("PATCH", path, {"disabled": True}),
        ("POST", f"{path}/secret", {}),
    ]:
        response = api.http.request(method, url, headers=headers, json=body)
        assert_error(response, 401, "invalid_token")
        assert response.headers["www-authenticate"].startswith("Bearer ")
    # nothing happened
    assert api.admin("GET", path).json()["disabled"] is False
    assert api.access_token(client)


def admin_scoped_api(api: Api, scope: str) -> tuple[dict[str, Any], str, Api]:
    client = api.create_client(scope=scope)
    token = api.access_token(client)
    return client, token, Api(api.url, admin_token=token)


def test_an_access_token_with_the_admin_scope_can_manage_clients(api: Api) -> None:
    _, _, automation = admin_scoped_api(api, f"{ADMIN_SCOPE} read")
    try:
        created = automation.create_client(client_name="made by automation", scope="read")
        path = f"/admin/clients/{created['client_id']}"
        assert automation.admin("GET", path).json()["client_name"] == "made by automation"
        assert automation.admin("PATCH", path, json={"client_name": "renamed"}).json()["client_name"] == "renamed"
        rotated = automation.admin("POST", f"{path}/secret", json={"grace_period": 0})
        assert rotated.status_code == 200 and SECRET_SHAPE.fullmatch(rotated.json()["client_secret"])
        assert automation.admin("DELETE", path).status_code == 204
        assert_error(api.admin("GET", path), 404, "not_found")
    finally:
        automation.close()


def test_an_access_token_without_the_admin_scope_is_403_insufficient_scope(api: Api) -> None:
    _, _, intruder = admin_scoped_api(api, "read write")
    try:
        for method, url, body in [("GET", "/admin/clients", None), ("POST", "/admin/clients", {"client_name": "x"})]:
            response = intruder.admin(method, url, json=body)
            assert_error(response, 403, "insufficient_scope")
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("Bearer ") and f'scope="{ADMIN_SCOPE}"' in challenge
    finally:
        intruder.close()


def test_an_admin_scoped_token_minted_for_another_service_is_refused(api: Api) -> None:
    # Service B receives such a token from Service A; it must not be able to replay it here.
    client = api.create_client(scope=ADMIN_SCOPE, audience=["service-b", api.url])
    for_b = Api(api.url, admin_token=api.access_token(client, audience="service-b"))
    for_us = Api(api.url, admin_token=api.access_token(client, audience=api.url))
    try:
        assert_error(for_b.admin("GET", "/admin/clients"), 401, "invalid_token")
        assert for_us.admin("GET", "/admin/clients").status_code == 200
    finally:
        for_b.close()
        for_us.close()


def test_an_admin_token_asked_for_a_narrower_scope_is_403(api: Api) -> None:
    client = api.create_client(scope=f"{ADMIN_SCOPE} read")
    narrow = Api(api.url, admin_token=api.access_token(client, scope="read"))
    try:
        assert_error(narrow.admin("GET", "/admin/clients"), 403, "insufficient_scope")
    finally:
        narrow.close()


@pytest.mark.parametrize(
    "invalidate",
    [
        pytest.param(lambda api, client, token: api.revoke(client, token), id="should fail after the token is revoked"),
        pytest.param(
            lambda api, client, token: api.admin(
                "PATCH", f"/admin/clients/{client['client_id']}", json={"disabled": True}
            ),
            id="should fail after its client is disabled",
        ),
        pytest.param(
            lambda api, client, token: api.admin("DELETE", f"/admin/clients/{client['client_id']}"),
            id="should fail after its client is deleted",
        ),
    ],
)
def test_an_admin_scoped_token_stops_working_at_once_when_invalidated(
    api: Api, invalidate: Callable[[Api, dict[str, Any], str], httpx.Response]
) -> None:
    client, token, automation = admin_scoped_api(api, ADMIN_SCOPE)
    try:
        assert automation.admin("GET", "/admin/clients").status_code == 200
        assert invalidate(api, client, token).status_code < 300
        response = automation.admin("GET", "/admin/clients")
        assert_error(response, 401, "invalid_token")
        assert response.headers["www-authenticate"].startswith("Bearer ")
    finally:
        automation.close()


# --- secret rotation -----------------------------------------------------------------------------


def test_rotation_without_a_grace_period_keeps_the_old_secret_for_an_hour(api: Api) -> None:
    client = api.create_client()
    before = time.time()
    response = api.admin("POST", f"/admin/clients/{client['client_id']}/secret")
    after = time.time()

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"client_id", "client_secret", "previous_secret_expires_at"}
    assert body["client_id"] == client["client_id"]
    assert SECRET_SHAPE.fullmatch(body["client_secret"]) and body["client_secret"] != client["client_secret"]
    assert int(before) + 3600 - 1 <= body["previous_secret_expires_at"] <= after + 3600 + 1
    assert api.token(client).status_code == 200
    assert api.token({**client, "client_secret": body["client_secret"]}).status_code == 200
    assert "client_secret" not in api.admin("GET", f"/admin/clients/{client['client_id']}").json()


@pytest.mark.parametrize(
    "grace",
    [
        pytest.param(120, id="should keep the old secret for the given grace period"),
        pytest.param(30 * 86400, id="should accept a thirty day grace period"),
    ],
)
def test_rotation_with_a_grace_period_keeps_the_old_secret_until_then(api: Api, grace: int) -> None:
    client = api.create_client()
    before = time.time()
    response = api.admin("POST", f"/admin/clients/{client['client_id']}/secret", json={"grace_period": grace})
    after = time.time()
    assert response.status_code == 200, response.text
    assert int(before) + grace - 1 <= response.json()["previous_secret_expires_at"] <= after + grace + 1
    assert api.token(client).status_code == 200
    assert api.token({**client, "client_secret": response.json()["client_secret"]}).status_code == 200


def test_rotation_with_grace_zero_stops_the_old_secret_at_once(api: Api) -> None:
    client = api.create_client()
    token = api.access_token(client)
    response = api.admin("POST", f"/admin/clients/{client['client_id']}/secret", json={"grace_period": 0})
    assert response.status_code == 200, response.text
    rotated = {**client, "client_secret": response.json()["client_secret"]}

    failed = api.token(client)
    assert_error(failed, 401, "invalid_client")
    assert "www-authenticate" in failed.headers
    assert_error(api.introspect(client, token), 401, "invalid_client")
    assert api.token(rotated).status_code == 200
    # tokens issued before the rotation stay valid: rotating a secret is not revoking tokens
    assert_active(api, rotated, token, True)


def test_a_second_rotation_cuts_the_grace_of_the_first_secret_short_when_asked(api: Api) -> None:
    client = api.create_client()
    path = f"/admin/clients/{client['client_id']}/secret"
    second = {**client, "client_secret": api.admin("POST", path, json={"grace_period": 3600}).json()["client_secret"]}
    third = {**client, "client_secret": api.admin("POST", path, json={"grace_period": 0}).json()["client_secret"]}
    assert_error(api.token(client), 401, "invalid_client")
    assert_error(api.token(second), 401, "invalid_client")
    assert api.token(third).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"grace_period": -1}, id="should fail because the grace period is negative"),
        pytest.param({"grace_period": "60"}, id="should fail because the grace period is a string"),
        pytest.param({"grace_period": 30 * 86400 + 1}, id="should fail because the grace period is above thirty days"),
        pytest.param({"grace": 60}, id="should fail because of an unknown field"),
    ],
)
def test_invalid_rotation_request_is_400_and_keeps_the_secret(api: Api, body: dict[str, Any]) -> None:
    client = api.create_client()
    response = api.admin("POST", f"/admin/clients/{client['client_id']}/secret", json=body)
    assert_error(response, 400, "invalid_client_metadata")
    assert api.token(client).status_code == 200


# --- storage of secrets --------------------------------------------------------------------------


def stored_bytes(database_url: str) -> bytes:
    """Everything the database holds: the SQLite files byte for byte, or every PostgreSQL row as text."""
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())

    async def dump() -> bytes:
        import asyncpg

        conn = await asyncpg.connect(database_url)
        try:
            names = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            rows = [await conn.fetch(f'SELECT t::text AS row FROM "{n["tablename"]}" t') for n in names]
        finally:
            await conn.close()
        return "\n".join(r["row"] for table in rows for r in table).encode()

    return asyncio.run(dump())


def assert_stored_as_digest_only(database_url: str, secret: str) -> None:
    blob = stored_bytes(database_url)
    digest = hashlib.sha256(secret.encode()).digest()
    assert secret.encode() not in blob
    assert secret.removeprefix("m2m_cs_").removeprefix("m2m_at_").encode() not in blob
    assert digest in blob or b"\\x" + digest.hex().encode() in blob


def test_client_secrets_and_tokens_are_stored_only_as_sha256_digests(server: ServerProcess, api: Api) -> None:
    client = api.create_client()
    rotated = api.admin("POST", f"/admin/clients/{client['client_id']}/secret").json()["client_secret"]
    token = api.access_token(client)

    assert_stored_as_digest_only(server.database_url, client["client_secret"])
    assert_stored_as_digest_only(server.database_url, rotated)
    assert_stored_as_digest_only(server.database_url, token)


def test_generated_client_ids_are_safe_to_pass_as_command_line_arguments(api: Api) -> None:
    # A URL-safe base64 id can start with "-", which every CLI (ours included) reads as an option.
    ids = {api.create_client()["client_id"] for _ in range(20)}
    assert len(ids) == 20 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
