"""Two server processes on one PostgreSQL database, as replicas behind a load balancer: they honour each
other's tokens and revocations at once, publish the same keys, follow each other's rotations within
key_refresh_interval, and agree on one first key when they start together on an empty database.

Replicas share one public issuer (each process here listens on a port of its own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from .._server import Api, ServerProcess
from ._helpers import header, stored_keys, verify, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("backend", ["postgres"], indirect=True)]

ISSUER = "https://auth.example.test"
API_A = "https://api-a.example"
REPLICA = {"issuer": ISSUER, "key_refresh_interval": 0.5, "access_token_format": "jwt"}

Client = dict[str, Any]


@pytest.fixture(scope="module")
def replicas(backend: str, database_factory: Callable[[str], str]) -> Iterator[tuple[Api, Api]]:
    """Two replicas, A and B; the same admin token works on both (ServerProcess's default)."""
    url = database_factory(backend)
    procs = [ServerProcess(url, **REPLICA).start()]
    procs.append(ServerProcess(url, **REPLICA).start())
    apis = (Api(procs[0].url), Api(procs[1].url))
    yield apis
    for api in apis:
        api.close()
    for proc in procs:
        proc.stop()


def jwks(api: Api) -> dict[str, Any]:
    response = api.http.get("/.well-known/jwks.json")
    assert response.status_code == 200, response.text
    return dict(response.json())


def active(api: Api, caller: Client, token: str) -> bool:
    response = api.introspect(caller, token)
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


FORMATS = [pytest.param("jwt", id="a jwt"), pytest.param("opaque", id="an opaque token")]


@pytest.mark.parametrize("token_format", FORMATS)
def test_a_token_from_one_replica_is_active_at_the_other(replicas: tuple[Api, Api], token_format: str) -> None:
    a, b = replicas
    owner = a.create_client(access_token_format=token_format, audience=[API_A], metadata={"tenant": "acme"})
    resource = a.create_client(client_name="resource server")
    token = a.access_token(owner)

    at_a, at_b = a.introspect(resource, token).json(), b.introspect(resource, token).json()

    assert at_b["active"] is True
    assert at_b == at_a


def _revoke_own(api: Api, owner: Client, token: str) -> None:
    assert api.revoke(owner, token).status_code == 200


def _revoke_as_admin(api: Api, owner: Client, token: str) -> None:
    assert api.admin("POST", "/admin/tokens/revoke", json={"token": token}).json() == {"revoked": True}


def _revoke_all_of_client(api: Api, owner: Client, token: str) -> None:
    assert api.admin("POST", f"/admin/clients/{owner['client_id']}/revoke-tokens").status_code == 200


def _disable_client(api: Api, owner: Client, token: str) -> None:
    assert api.admin("PATCH", f"/admin/clients/{owner['client_id']}", json={"disabled": True}).status_code == 200


@pytest.mark.parametrize("token_format", FORMATS)
@pytest.mark.parametrize(
    "revoke",
    [
        pytest.param(_revoke_own, id="revoked by its client at one replica"),
        pytest.param(_revoke_as_admin, id="revoked by an admin at one replica"),
        pytest.param(_revoke_all_of_client, id="all of its client's tokens revoked at one replica"),
        pytest.param(_disable_client, id="its client disabled at one replica"),
    ],
)
def test_a_revocation_at_one_replica_applies_at_the_other_on_the_next_request(
    replicas: tuple[Api, Api], revoke: Callable[[Api, Client, str], None], token_format: str
) -> None:
    a, b = replicas
    owner = a.create_client(access_token_format=token_format, audience=[API_A])
    resource = a.create_client(client_name="resource server")
    token = a.access_token(owner)
    assert active(b, resource, token), "B knows the token (and now has its client cached)"

    revoke(a, owner, token)

    assert not active(b, resource, token)
    assert not active(a, resource, token)


def test_both_replicas_publish_the_same_keys(replicas: tuple[Api, Api]) -> None:
    a, b = replicas
    owner = a.create_client(audience=[API_A])

    assert jwks(a) == jwks(b)
    assert header(a.access_token(owner))["kid"] == header(b.access_token(owner))["kid"]


def test_a_rotation_at_one_replica_reaches_the_other_within_the_refresh_interval(replicas: tuple[Api, Api]) -> None:
    a, b = replicas
    owner = a.create_client(audience=[API_A])
    resource = a.create_client(client_name="resource server")
    old_token = b.access_token(owner)

    rotated = a.admin("POST", "/admin/keys/rotate")
    assert rotated.status_code == 200, rotated.text
    new_kid = rotated.json()["kid"]

    def signed_with_new_key_at_b() -> str | None:
        token = b.access_token(owner)
        return token if header(token)["kid"] == new_kid else None

    token = wait_until(signed_with_new_key_at_b, "replica B to sign with the key replica A made", deadline=10)
    assert new_kid in [k["kid"] for k in jwks(b)["keys"]]
    assert jwks(a) == jwks(b)
    verify(token, f"{b.url}/oauth/jwks.json", issuer=ISSUER, audience=API_A)
    assert active(a, resource, token)
    assert active(b, resource, old_token), "tokens of the previous key stay valid at every replica"


def test_replicas_starting_together_on_an_empty_database_agree_on_one_first_key(
    backend: str, database_factory: Callable[[str], str]
) -> None:
    url = database_factory(backend)
    procs = [ServerProcess(url, **REPLICA) for _ in range(2)]
    try:
        with ThreadPoolExecutor(len(procs)) as pool:
            list(pool.map(lambda p: p.start(), procs))
        published = [httpx.get(f"{p.url}/.well-known/jwks.json", timeout=10).json() for p in procs]
        apis = [Api(p.url) for p in procs]
        owner = apis[0].create_client(audience=[API_A])
        tokens = [api.access_token(owner) for api in apis]
        for api in apis:
            api.close()
    finally:
        for proc in procs:
            proc.stop()

    assert published[0] == published[1]
    assert len(published[0]["keys"]) == 1
    assert [k.kid for k in stored_keys(url)] == [published[0]["keys"][0]["kid"]]
    assert {header(t)["kid"] for t in tokens} == {published[0]["keys"][0]["kid"]}
