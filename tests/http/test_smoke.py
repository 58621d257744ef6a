from __future__ import annotations

from .._server import Api


def test_a_client_gets_a_token_that_introspects_active_until_revoked(api: Api) -> None:
    client = api.create_client(scope="read write", audience=["svc-b"])
    token = api.access_token(client, scope="read")
    body = api.introspect(client, token).json()
    assert body["active"] is True and body["scope"] == "read" and body["aud"] == "svc-b"
    assert api.revoke(client, token).status_code == 200
    assert api.introspect(client, token).json() == {"active": False}
