"""SDK for calling services with client credentials tokens: `pip install m2m-auth` (httpx and joserfc only).

tokens = TokenClient(issuer="https://auth.example", client_id="svc-a", client_secret="...", scope="read")
httpx.Client(auth=ClientCredentialsAuth(tokens, audience="svc-b")).get("https://svc-b.example/things")
"""

from __future__ import annotations

from m2m_auth.client.auth import ClientCredentialsAuth, RequestsClientCredentialsAuth
from m2m_auth.client.token_client import AsyncTokenClient, Token, TokenClient

__all__ = [
    "TokenClient",
    "AsyncTokenClient",
    "Token",
    "ClientCredentialsAuth",
    "RequestsClientCredentialsAuth",
]
