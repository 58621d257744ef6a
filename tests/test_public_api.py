"""The public names of the SDK packages, pinned (httpx's test_exported_members): adding or removing one is a
decision, made here. A package joins with one line in PUBLIC_API."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC_API: dict[str, list[str]] = {
    "m2m_auth.client": [
        "TokenClient",
        "AsyncTokenClient",
        "Token",
        "ClientCredentialsAuth",
        "RequestsClientCredentialsAuth",
    ],
    "m2m_auth.resource": [
        "TokenValidator",
        "IntrospectionValidator",
        "JWTValidator",
        "Claims",
        "BearerAuthMiddleware",
        "require_scopes",
    ],
}


@pytest.mark.parametrize("package", sorted(PUBLIC_API))
def test_the_package_exports_exactly_the_pinned_names(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PUBLIC_API[package])
    for name in module.__all__:
        assert getattr(module, name).__module__.startswith(package + "."), name


@pytest.mark.parametrize("package", sorted(PUBLIC_API))
def test_every_public_attribute_of_the_package_is_in_all(package: str) -> None:
    module = importlib.import_module(package)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"  # from __future__
    }
    assert public == set(module.__all__)
