"""Third-party OAuth clients against a real server: what our users' code will actually send.

Authlib's httpx `OAuth2Client` (token, introspection, revocation) and requests-oauthlib's
`OAuth2Session` with a `BackendApplicationClient`, each with client_secret_basic and client_secret_post.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from authlib.deprecate import AuthlibDeprecationWarning  # first: importing it installs an "always" filter
from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from .._server import Api, ServerProcess

with warnings.catch_warnings():
    # Authlib 1.9 deprecates its httpx integration in favour of httpx2; it is still what users have installed.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

METHODS = ["client_secret_basic", "client_secret_post"]


@pytest.fixture
def registered(api: Api) -> dict[str, Any]:
    return api.create_client(client_name="interop", scope="read write", audience=["svc-a", "svc-b"])


@pytest.fixture
def authlib_client(
    server: ServerProcess, registered: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[OAuth2Client]:
    method = request.param
    with OAuth2Client(
        registered["client_id"],
        registered["client_secret"],
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
        scope="read",
        timeout=10,
    ) as client:
        yield client


@pytest.mark.parametrize("authlib_client", METHODS, indirect=True)
def test_authlib_fetches_a_token_with_scope_and_audience_that_introspects_active(
    server: ServerProcess, api: Api, registered: dict[str, Any], authlib_client: OAuth2Client
) -> None:
    token = authlib_client.fetch_token(f"{server.url}/oauth/token", grant_type="client_credentials", audience="svc-b")
    assert token["token_type"] == "Bearer" and token["scope"] == "read"
    assert token["expires_in"] > 0 and token["expires_at"] > 0  # Authlib computes expires_at for its refresh logic

    body = api.introspect(registered, token["access_token"]).json()
    assert body["active"] is True
    assert (body["scope"], body["aud"], body["client_id"]) == ("read", "svc-b", registered["client_id"])


@pytest.mark.parametrize("authlib_client", METHODS, indirect=True)
def test_authlib_introspects_and_revokes_with_its_own_client_authentication(
    server: ServerProcess, registered: dict[str, Any], authlib_client: OAuth2Client
) -> None:
    token = authlib_client.fetch_token(f"{server.url}/oauth/token", grant_type="client_credentials")
    access_token = token["access_token"]

    introspection = authlib_client.introspect_token(
        f"{server.url}/oauth/introspect", token=access_token, token_type_hint="access_token"
    )
    assert introspection.status_code == 200, introspection.text
    body = introspection.json()
    # No audience asked for: the token is for all of the client's audiences.
    assert body["active"] is True and body["scope"] == "read" and body["aud"] == ["svc-a", "svc-b"]

    revocation = authlib_client.revoke_token(
        f"{server.url}/oauth/revoke", token=access_token, token_type_hint="access_token"
    )
    assert revocation.status_code == 200, revocation.text

    after = authlib_client.introspect_token(f"{server.url}/oauth/introspect", token=access_token)
    assert after.json() == {"active": False}


@pytest.mark.parametrize("authlib_client", ["client_secret_basic"], indirect=True)
def test_authlib_surfaces_a_refused_scope_as_the_rfc_error(server: ServerProcess, authlib_client: OAuth2Client) -> None:
    from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError

    with pytest.raises(AuthlibOAuthError) as refused:
        authlib_client.fetch_token(f"{server.url}/oauth/token", grant_type="client_credentials", scope="admin")
    assert refused.value.error == "invalid_scope"


@pytest.fixture
def insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    # oauthlib refuses plain http unless told otherwise; the test server has no TLS.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def backend_session(client_id: str, scope: list[str]) -> OAuth2Session:
    # requests-oauthlib sends the scope of the oauthlib client, and checks the answer against the session's:
    # a scope given to OAuth2Session alone is never sent for this grant.
    return OAuth2Session(client=BackendApplicationClient(client_id=client_id, scope=scope), scope=scope)


@pytest.mark.usefixtures("insecure_transport")
def test_requests_oauthlib_with_basic_auth_gets_a_token_for_the_asked_scope_and_audience(
    server: ServerProcess, api: Api, registered: dict[str, Any]
) -> None:
    session = backend_session(registered["client_id"], ["read"])
    token = session.fetch_token(
        f"{server.url}/oauth/token",
        auth=HTTPBasicAuth(registered["client_id"], registered["client_secret"]),
        audience="svc-a",
        timeout=10,
    )
    assert token["token_type"] == "Bearer" and token["scope"] == ["read"]  # oauthlib splits the scope

    body = api.introspect(registered, token["access_token"]).json()
    assert body["active"] is True and body["scope"] == "read" and body["aud"] == "svc-a"

    assert api.revoke(registered, token["access_token"]).status_code == 200
    assert api.introspect(registered, token["access_token"]).json() == {"active": False}


@pytest.mark.usefixtures("insecure_transport")
def test_requests_oauthlib_posting_the_client_secret_in_the_body_gets_a_token(
    server: ServerProcess, api: Api, registered: dict[str, Any]
) -> None:
    session = backend_session(registered["client_id"], ["write"])
    token = session.fetch_token(
        f"{server.url}/oauth/token",
        include_client_id=True,
        client_secret=registered["client_secret"],
        audience="svc-b",
        timeout=10,
    )
    assert "Authorization" not in session.headers  # really client_secret_post, not a Basic header
    body = api.introspect(registered, token["access_token"]).json()
    assert body["active"] is True and body["scope"] == "write" and body["aud"] == "svc-b"

    # The session then uses the token as a Bearer token, as a resource call would.
    assert session.authorized and session.access_token == token["access_token"]
