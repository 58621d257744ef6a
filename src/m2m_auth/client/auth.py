"""Bearer tokens on outgoing requests (RFC 6750 §2.1), refreshed once when the service rejects them (§3.1).

`ClientCredentialsAuth` is an `httpx.Auth` for `httpx.Client` (with a `TokenClient`) and `httpx.AsyncClient`
(with an `AsyncTokenClient`); `RequestsClientCredentialsAuth` does the same for `requests`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Generator, Iterable
from typing import Any

import httpx

from m2m_auth.client.token_client import AsyncTokenClient, TokenClient

__all__ = ["ClientCredentialsAuth", "RequestsClientCredentialsAuth", "bearer_error"]

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# One item of a WWW-Authenticate value (RFC 9110 §11.6.1): an auth-param, an auth-scheme, or anything else (token68).
_ITEM = re.compile(
    rf'[\s,]*(?:(?P<name>{_TOKEN})\s*=\s*(?P<value>"(?:[^"\\]|\\.)*"|{_TOKEN})|(?P<scheme>{_TOKEN})|[^\s,]+)'
)


def bearer_error(challenges: Iterable[str]) -> str | None:
    """The `error` parameter of a Bearer challenge among WWW-Authenticate values, or None."""
    for value in challenges:
        scheme = None
        for item in _ITEM.finditer(value):
            if item.group("scheme"):
                scheme = item.group("scheme").lower()
            elif item.group("name") and scheme == "bearer" and item.group("name").lower() == "error":
                error = item.group("value")
                return re.sub(r"\\(.)", r"\1", error[1:-1]) if error.startswith('"') else error
    return None


def _rejects_token(status: int, challenges: Iterable[str]) -> bool:
    """401 with error="invalid_token": the token expired or was revoked early, so a new one may pass.

    A 401 without that error (no token understood, wrong scheme) or a 403 (insufficient_scope) would fail
    again with a new token of the same scope, so those are not retried.
    """
    return status == 401 and bearer_error(challenges) == "invalid_token"


class ClientCredentialsAuth(httpx.Auth):
    """httpx.Auth adding `Authorization: Bearer <token>`; on 401 invalid_token, one refresh and one retry.

    Example::

        tokens = TokenClient(issuer="https://auth.example", client_id="svc-a", client_secret="...")
        with httpx.Client(auth=ClientCredentialsAuth(tokens, scope="read", audience="svc-b")) as http:
            http.get("https://svc-b.example/things")

    No lock is held across the `yield`: httpx may resume or close the flow from another task. The token
    client's own single flight (per scope and audience) keeps concurrent refreshes to one.
    A request whose body is a one-shot stream cannot be sent twice; give such requests bytes.
    """

    def __init__(
        self,
        token_client: TokenClient | AsyncTokenClient,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
    ) -> None:
        """Use `token_client` for the tokens of the requests this auth is given to.

        Args:
            token_client: A TokenClient (for httpx.Client) or an AsyncTokenClient (for httpx.AsyncClient).
            scope: Scope of the tokens for these requests (None: the token client's default).
            audience: Audience of the tokens (None: the token client's default).
        """
        self.token_client = token_client
        self.scope = scope
        self.audience = audience

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        client = self.token_client
        if not isinstance(client, TokenClient):
            raise TypeError("ClientCredentialsAuth on an httpx.Client needs a TokenClient, not an AsyncTokenClient")
        token = client.get_access_token(self.scope, self.audience)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if _rejects_token(response.status_code, response.headers.get_list("www-authenticate")):
            client.invalidate(token, self.scope, self.audience)
            request.headers["Authorization"] = f"Bearer {client.get_access_token(self.scope, self.audience)}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        client = self.token_client
        if not isinstance(client, AsyncTokenClient):
            # A blocking token request inside the event loop would stall every other task.
            raise TypeError("ClientCredentialsAuth on an httpx.AsyncClient needs an AsyncTokenClient")
        token = await client.get_access_token(self.scope, self.audience)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if _rejects_token(response.status_code, response.headers.get_list("www-authenticate")):
            client.invalidate(token, self.scope, self.audience)
            request.headers["Authorization"] = f"Bearer {await client.get_access_token(self.scope, self.audience)}"
            yield request


class RequestsClientCredentialsAuth:
    """The same for `requests` (a `requests.auth.AuthBase`-style callable): bearer token, one retry on invalid_token.

    Example::

        session = requests.Session()
        session.auth = RequestsClientCredentialsAuth(tokens, scope="read", audience="svc-b")

    It does not import requests (an optional dependency): requests only needs a callable, and the retry is
    sent through the connection adapter of the response, as requests' own HTTPDigestAuth does.
    """

    def __init__(
        self, token_client: TokenClient, scope: str | Iterable[str] | None = None, audience: str | None = None
    ) -> None:
        """Use `token_client` for the tokens of the requests this auth is given to.

        Args:
            token_client: A (blocking) TokenClient.
            scope: Scope of the tokens for these requests (None: the token client's default).
            audience: Audience of the tokens (None: the token client's default).

        Raises:
            TypeError: `token_client` is an AsyncTokenClient.
        """
        if not isinstance(token_client, TokenClient):
            raise TypeError("RequestsClientCredentialsAuth needs a TokenClient (requests is blocking)")
        self.token_client = token_client
        self.scope = scope
        self.audience = audience

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token_client.get_access_token(self.scope, self.audience)}"
        request.register_hook("response", self._retry_on_invalid_token)
        return request

    def _retry_on_invalid_token(self, response: Any, **kwargs: Any) -> Any:
        # requests joins repeated WWW-Authenticate headers with ", ", which the challenge parser reads as well.
        if not _rejects_token(response.status_code, [response.headers.get("www-authenticate", "")]):
            return response
        rejected = response.request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.token_client.invalidate(rejected, self.scope, self.audience)
        token = self.token_client.get_access_token(self.scope, self.audience)
        response.content  # noqa: B018 -- read the body so that the connection can be reused
        response.close()
        retry = response.request.copy()
        # copy() shares the hooks dict: give the retry its own, without this hook, so it is retried only once.
        retry.hooks = {
            **retry.hooks,
            "response": [h for h in retry.hooks["response"] if h != self._retry_on_invalid_token],
        }
        retry.headers["Authorization"] = f"Bearer {token}"
        second = response.connection.send(retry, **kwargs)
        second.history.append(response)
        second.request = retry
        return second
