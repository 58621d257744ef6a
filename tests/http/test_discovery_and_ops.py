"""Discovery (RFC 8414) and the operations endpoints: /healthz, /readyz, /metrics."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .._server import Api, ServerProcess

DISCOVERY_PATHS = ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when it has not been created yet)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def scrape(api: Api) -> str:
    response = api.http.get("/metrics")
    assert response.status_code == 200
    return response.text


# --- discovery ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DISCOVERY_PATHS, ids=["the RFC 8414 path", "the OpenID Connect path"])
def test_the_metadata_names_this_issuer_and_its_endpoints(api: Api, server: ServerProcess, path: str) -> None:
    response = api.http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    issuer = server.url
    assert body["issuer"] == issuer
    assert body["token_endpoint"] == f"{issuer}/oauth/token"
    assert body["introspection_endpoint"] == f"{issuer}/oauth/introspect"
    assert body["revocation_endpoint"] == f"{issuer}/oauth/revoke"
    assert body["grant_types_supported"] == ["client_credentials"]
    for field in (
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ):
        assert {"client_secret_basic", "client_secret_post"} <= set(body[field]), field
        assert "none" not in body[field]
    for key, value in body.items():
        if key.endswith("_endpoint") or key == "jwks_uri":
            assert value.startswith(issuer + "/"), (key, value)


def test_both_discovery_paths_serve_the_same_document(api: Api) -> None:
    first, second = (api.http.get(path).json() for path in DISCOVERY_PATHS)
    assert first == second


def test_a_client_that_follows_the_metadata_gets_introspects_and_revokes_a_token(api: Api) -> None:
    metadata = api.http.get(DISCOVERY_PATHS[0]).json()
    client = api.create_client(scope="read")
    auth = (client["client_id"], client["client_secret"])
    issued = api.http.post(metadata["token_endpoint"], data={"grant_type": "client_credentials"}, auth=auth)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert api.http.post(metadata["introspection_endpoint"], data={"token": token}, auth=auth).json()["active"] is True
    assert api.http.post(metadata["revocation_endpoint"], data={"token": token}, auth=auth).status_code == 200
    assert api.http.post(metadata["introspection_endpoint"], data={"token": token}, auth=auth).json() == {
        "active": False
    }


# --- health and readiness -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz"], ids=["liveness", "readiness (the database answers)"])
def test_health_endpoints_answer_200_with_json(api: Api, path: str) -> None:
    response = api.http.get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"], ids=["liveness", "readiness", "metrics"])
def test_ops_endpoints_refuse_post_with_json_405(api: Api, path: str) -> None:
    response = api.http.post(path)
    assert response.status_code == 405
    assert response.json()["error"] == "invalid_request"


# --- metrics --------------------------------------------------------------------------------------


def test_metrics_are_in_the_prometheus_text_format(api: Api) -> None:
    api.http.get("/healthz")
    response = api.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "m2m_auth_http_requests",
        "m2m_auth_http_request_duration_seconds",
        "m2m_auth_tokens_issued",
        "m2m_auth_introspections",
    } <= names


def test_metrics_count_requests_latencies_tokens_and_introspections_by_result(api: Api) -> None:
    client = api.create_client(scope="read")
    before = scrape(api)

    token = api.access_token(client)
    api.access_token(client)
    assert api.token(client, scope="write").status_code == 400
    assert api.introspect(client, token).json()["active"] is True
    assert api.introspect(client, "m2m_at_" + "A" * 43).json() == {"active": False}
    assert api.introspect(client, "garbage").json() == {"active": False}

    after = scrape(api)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("m2m_auth_tokens_issued_total", format="opaque") == 2
    assert delta("m2m_auth_introspections_total", result="active") == 1
    assert delta("m2m_auth_introspections_total", result="inactive") == 2
    assert delta("m2m_auth_http_requests_total", route="token", method="POST", status="200") == 2
    assert delta("m2m_auth_http_requests_total", route="token", method="POST", status="400") == 1
    assert delta("m2m_auth_http_requests_total", route="introspect", method="POST", status="200") == 3
    assert delta("m2m_auth_http_request_duration_seconds_count", route="token") == 3
    assert delta("m2m_auth_http_request_duration_seconds_count", route="introspect") == 3
    assert delta("m2m_auth_http_request_duration_seconds_sum", route="token") > 0
    assert delta("m2m_auth_requests_refused_total", endpoint="token", error="invalid_scope") == 1


def test_metrics_never_contain_a_token_or_a_secret(api: Api) -> None:
    client = api.create_client(scope="read")
    token = api.access_token(client)
    api.introspect(client, token)
    api.token({"client_id": client["client_id"], "client_secret": "m2m_cs_wrong-secret-value"})
    text = scrape(api)
    for secret in (token, token.removeprefix("m2m_at_"), client["client_secret"], "m2m_cs_wrong-secret-value"):
        assert secret not in text
    assert client["client_id"] not in text  # no per-client labels: they would grow without bound
