"""Service A: gets a token with client credentials (m2m_auth.client) and calls Service B.

    python examples/service-a/call.py

Environment:
    M2M_AUTH_ISSUER           the authorization server (its token endpoint comes from discovery)
    SERVICE_A_CLIENT_ID       Service A's client at the authorization server
    SERVICE_A_CLIENT_SECRET
    SERVICE_B_URL             Service B's base URL, e.g. http://127.0.0.1:8081
    SERVICE_A_SCOPE           scope to ask for (default: read)
    SERVICE_A_AUDIENCE        audience to ask for (default: none asked, so all of the client's audiences)
    SERVICE_B_PATH            path to call (default: /protected)

Prints Service B's status and body; exits 1 unless Service B answered 2xx.
"""

from __future__ import annotations

import os
import sys

import httpx

from m2m_auth.client import ClientCredentialsAuth, TokenClient


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"service-a: set {name}")
    return value


def main() -> int:
    url = _env("SERVICE_B_URL").rstrip("/") + os.environ.get("SERVICE_B_PATH", "/protected")
    tokens = TokenClient(
        issuer=_env("M2M_AUTH_ISSUER").rstrip("/"),
        client_id=_env("SERVICE_A_CLIENT_ID"),
        client_secret=_env("SERVICE_A_CLIENT_SECRET"),
    )
    scope = os.environ.get("SERVICE_A_SCOPE", "read")
    audience = os.environ.get("SERVICE_A_AUDIENCE") or None
    with tokens, httpx.Client(auth=ClientCredentialsAuth(tokens, scope=scope, audience=audience), timeout=10.0) as http:
        response = http.get(url)
    print(f"GET {url} -> {response.status_code}")
    print(response.text)
    return 0 if response.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
