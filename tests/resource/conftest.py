from __future__ import annotations

from typing import Any

import pytest

from .._server import Api
from ._support import SERVICE_AUDIENCE


@pytest.fixture(scope="module")
def service(api: Api) -> dict[str, Any]:
    """The resource server's own client: it introspects with these credentials, and asks for no token itself."""
    return api.create_client(client_name="service-b (resource server)")


@pytest.fixture(scope="module")
def caller(api: Api) -> dict[str, Any]:
    """Service A: an opaque-token client allowed scopes read and write for service B."""
    return api.create_client(client_name="service-a", scope="read write", audience=[SERVICE_AUDIENCE, "other"])


@pytest.fixture(scope="module")
def jwt_caller(api: Api) -> dict[str, Any]:
    return api.create_client(
        client_name="service-a (jwt)",
        scope="read write",
        audience=[SERVICE_AUDIENCE, "other"],
        access_token_format="jwt",
    )
