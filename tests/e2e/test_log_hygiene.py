"""The server's logs never hold a credential, yet say why a request was refused.

Logs are shipped to places with wider access than the database (log aggregators, support tickets),
so no client secret, access token or admin token may appear in them, right or wrong, at any level.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import Any

from .._server import Api, ServerProcess

# Generated credentials carry a prefix for secret scanners; the random part alone must not leak either.
PREFIXES = ("m2m_admin_", "m2m_cs_", "m2m_at_")


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_no_secret_token_or_admin_token_reaches_the_log_and_refusals_say_why(
    server_factory: Callable[..., ServerProcess],
) -> None:
    admin_token = "m2m_admin_" + secrets.token_urlsafe(32)
    # debug: the most talkative level an operator may switch on must be clean too.
    server = server_factory(admin_token=admin_token, log_level="debug")
    api = Api(server.url, admin_token=admin_token)
    http = api.http
    sensitive: list[str] = [admin_token]

    client = api.create_client(client_name="log hygiene", scope="read write", audience=["svc-a"])
    client_id, secret = client["client_id"], client["client_secret"]
    sensitive.append(secret)

    # Tokens with client_secret_basic and client_secret_post.
    by_basic = api.access_token(client, scope="read")
    post = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "audience": "svc-a"},
    )
    assert post.status_code == 200, post.text
    by_post = post.json()["access_token"]
    sensitive += [by_basic, by_post]

    # Introspection, revocation, and the admin API's views of a token.
    assert api.introspect(client, by_basic).json()["active"] is True
    assert api.revoke(client, by_basic).status_code == 200
    assert api.introspect(client, by_basic).json() == {"active": False}
    assert api.admin("POST", "/admin/tokens/explain", json={"token": by_post}).status_code == 200
    assert api.admin("POST", "/admin/tokens/revoke", json={"token": by_post}).status_code == 200

    # Secret rotation: the new secret works and must not be logged either.
    rotated = api.admin("POST", f"/admin/clients/{client_id}/secret", json={"grace_period": 0})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["client_secret"]
    sensitive.append(new_secret)
    sensitive.append(api.access_token({"client_id": client_id, "client_secret": new_secret}))

    # Refusals: a wrong secret, a wrong secret that looks like a real one (a typo in a pasted secret, or the
    # previous secret), an unknown client, and an admin token that looks real but is not.
    wrong = "not-the-secret"
    lookalike = "m2m_cs_" + secrets.token_urlsafe(32)
    stranger_secret = "m2m_cs_" + secrets.token_urlsafe(32)
    wrong_admin = "m2m_admin_" + secrets.token_urlsafe(32)
    sensitive += [wrong, lookalike, stranger_secret, wrong_admin]
    form = {"grant_type": "client_credentials"}
    refusals: list[tuple[str, dict[str, Any]]] = [
        ("/oauth/token", {"data": form, "headers": _basic(client_id, wrong)}),
        ("/oauth/token", {"data": {**form, "client_id": client_id, "client_secret": lookalike}}),
        ("/oauth/token", {"data": form, "headers": _basic(client_id, secret)}),  # the rotated-out secret
        ("/oauth/introspect", {"data": {"token": by_post}, "headers": _basic(client_id, lookalike)}),
        ("/oauth/revoke", {"data": {"token": by_post}, "headers": _basic(client_id, lookalike)}),
        ("/oauth/token", {"data": form, "headers": _basic("no-such-client", stranger_secret)}),
    ]
    for path, request in refusals:
        response = http.post(path, **request)
        assert response.status_code == 401 and response.json()["error"] == "invalid_client", response.text
    admin_refused = http.get("/admin/clients", headers={"Authorization": f"Bearer {wrong_admin}"})
    assert admin_refused.status_code == 401

    api.close()
    server.stop()  # flushes everything the process had to say
    log = server.log()
    assert "m2m-auth ready" in log  # the log was captured at all

    leaks = []
    for value in sensitive:
        random_part = value
        for prefix in PREFIXES:
            random_part = random_part.removeprefix(prefix)
        for form_of_value in {value, random_part, base64.b64encode(f"{client_id}:{value}".encode()).decode()}:
            if form_of_value in log:
                leaks.append(form_of_value)
    assert not leaks, f"credentials in the server log: {leaks}\n{log}"

    # Operators can still tell what went wrong, and for which client.
    refused = [line for line in log.splitlines() if "refused" in line and "invalid_client" in line]
    assert any(client_id in line and "wrong secret" in line for line in refused), log
    assert any("token request refused" in line for line in refused), log
    assert any("introspect request refused" in line for line in refused), log
    assert any("revoke request refused" in line for line in refused), log
    assert any("no-such-client" in line and "unknown client" in line for line in refused), log
    # A refused admin request is a security event: it is logged too (without the token it presented).
    assert any("admin request refused: invalid_token" in line for line in log.splitlines()), log
