"""deploy/k8s rendered with kustomize and checked offline: Kubernetes' own schemas, and what the pods rely on.

No cluster runs here (no container engine): these are the checks that need none. `kubectl kustomize` (pinned,
from the test extra) renders each directory as `kubectl apply -k` would; kubernetes-validate checks every
object against the Kubernetes JSON schemas in strict mode, so an unknown or misspelt field fails. Istio's
kinds have no schema there: they are checked by the assertions below only.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from m2m_auth.server.settings import Settings

from ._tools import E2E_KIND, K8S, render, script_setting

Obj = dict[str, Any]

# The oldest Kubernetes minor still supported upstream when this was written, and the newest schema bundled.
KUBERNETES_VERSIONS = ["1.31.0", kubernetes_validate.latest_version()]
ISTIO_KINDS = {"RequestAuthentication", "AuthorizationPolicy"}
SERVER_PORT = 8000
GRACEFUL_SHUTDOWN = 30  # uvicorn's timeout_graceful_shutdown in `m2m-auth serve`


@pytest.fixture(scope="module")
def kind() -> list[Obj]:
    return render(K8S / "overlays" / "kind")


@pytest.fixture(scope="module")
def base() -> list[Obj]:
    return render(K8S / "base")


@pytest.fixture(scope="module")
def istio() -> list[Obj]:
    return render(K8S / "istio")


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def generated(objects: list[Obj], kind: str, name: str) -> Obj:
    """A ConfigMap or Secret of a kustomize generator: its name carries a content hash."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].rsplit("-", 1)[0] == name]
    assert len(found) == 1, f"expected one generated {kind} {name}, found {len(found)}"
    return found[0]


def pod_templates(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]


def containers(pod: Obj) -> list[Obj]:
    return [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def decoded(secret: Obj) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


# --- schemas -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("directory", ["base", "overlays/kind", "overlays/production-example"])
def test_every_rendered_object_is_valid_against_the_kubernetes_schema(directory: str, version: str) -> None:
    objects = render(K8S / directory)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_istio_example_renders_only_istio_kinds_of_the_v1_api(istio: list[Obj]) -> None:
    assert {o["kind"] for o in istio} == ISTIO_KINDS
    assert {o["apiVersion"] for o in istio} == {"security.istio.io/v1"}


# --- the server pods -----------------------------------------------------------------------------


def test_the_server_runs_at_least_two_replicas_with_a_disruption_budget(kind: list[Obj]) -> None:
    deployment = one(kind, "Deployment", "m2m-auth")
    pdb = one(kind, "PodDisruptionBudget", "m2m-auth")
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} >= {"kubernetes.io/hostname"}
    assert all(c["labelSelector"]["matchLabels"].items() <= labels.items() for c in spread)


def test_the_server_probes_ask_readyz_for_readiness_and_healthz_for_liveness(kind: list[Obj]) -> None:
    pod = one(kind, "Deployment", "m2m-auth")["spec"]["template"]
    server = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}

    assert server["args"] == ["serve", "--host", "0.0.0.0", "--port", str(SERVER_PORT)]
    assert ports == {"http": SERVER_PORT}
    assert server["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert server["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_the_server_stops_gracefully_after_leaving_the_endpoints(kind: list[Obj]) -> None:
    pod = one(kind, "Deployment", "m2m-auth")["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]

    assert pre_stop[0] == "/bin/sleep"
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + GRACEFUL_SHUTDOWN


def test_the_server_waits_for_the_migration_job_instead_of_crash_looping(kind: list[Obj]) -> None:
    deployment = one(kind, "Deployment", "m2m-auth")["spec"]["template"]["spec"]
    job = one(kind, "Job", "m2m-auth-migrate")["spec"]
    (init,) = deployment["initContainers"]
    (migrate,) = job["template"]["spec"]["containers"]

    assert init["args"][:2] == ["migrate", "--check"] and "--wait" in init["args"]
    assert migrate["args"][0] == "migrate" and "--check" not in migrate["args"]
    assert init["image"] == migrate["image"] == deployment["containers"][0]["image"]
    assert job["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
    assert job["backoffLimit"] >= 1 and job["ttlSecondsAfterFinished"] > 0
    for c in (init, migrate):
        assert env_of(c)["M2M_AUTH_DATABASE_URL"] == env_of(deployment["containers"][0])["M2M_AUTH_DATABASE_URL"]


def test_the_server_service_reaches_the_server_pods(kind: list[Obj]) -> None:
    service = one(kind, "Service", "m2m-auth")
    labels = one(kind, "Deployment", "m2m-auth")["spec"]["template"]["metadata"]["labels"]

    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [{"name": "http", "port": SERVER_PORT, "targetPort": "http"}]


# --- every pod -----------------------------------------------------------------------------------


def test_every_pod_runs_as_non_root_on_a_read_only_root_with_no_capabilities(kind: list[Obj]) -> None:
    templates = dict(pod_templates(kind))
    assert {"Deployment/m2m-auth", "Deployment/resource-server", "StatefulSet/postgres", "Job/m2m-auth-migrate"} <= set(
        templates
    )
    for where, pod in templates.items():
        security = pod["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True, where
        assert security["runAsUser"] > 0, where
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["spec"]["automountServiceAccountToken"] is False, where
        for c in containers(pod):
            context = c["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, (where, c["name"])
            assert context["readOnlyRootFilesystem"] is True, (where, c["name"])
            assert context["capabilities"] == {"drop": ["ALL"]}, (where, c["name"])


def test_every_container_has_cpu_and_memory_requests_and_limits(kind: list[Obj]) -> None:
    for where, pod in pod_templates(kind):
        for c in containers(pod):
            for bound in ("requests", "limits"):
                assert set(c["resources"][bound]) == {"cpu", "memory"}, (where, c["name"], bound)


def test_the_server_image_runs_as_the_uid_the_dockerfile_creates(kind: list[Obj]) -> None:
    dockerfile = (K8S.parents[1] / "Dockerfile").read_text()
    pod = one(kind, "Deployment", "m2m-auth")["spec"]["template"]["spec"]

    assert f"USER {pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" in dockerfile


# --- secrets and settings ------------------------------------------------------------------------


def test_the_base_bakes_in_no_secret(base: list[Obj]) -> None:
    assert [o["metadata"]["name"] for o in base if o["kind"] == "Secret"] == []


def test_every_secret_key_a_pod_reads_exists_in_the_kind_overlay_or_is_made_by_the_e2e_script(
    kind: list[Obj],
) -> None:
    secrets = {o["metadata"]["name"]: set(o["data"]) for o in kind if o["kind"] == "Secret"}
    script = E2E_KIND.read_text()
    read = set()
    for _, pod in pod_templates(kind):
        for c in containers(pod):
            for e in c.get("env", []):
                if ref := e.get("valueFrom", {}).get("secretKeyRef"):
                    read.add((ref["name"], ref["key"]))
    assert read

    for name, key in read:
        if name == "resource-server-credentials":  # the resource server's own client, registered by the script
            assert f"--from-file={key}=" in script and f"create secret generic {name}" in script
        else:
            assert key in secrets.get(name, set()), f"no key {key} in Secret {name}"


def test_every_config_map_a_pod_reads_exists_with_its_keys(kind: list[Obj]) -> None:
    maps = {o["metadata"]["name"]: set(o["data"]) for o in kind if o["kind"] == "ConfigMap"}
    for where, pod in pod_templates(kind):
        for c in containers(pod):
            for source in c.get("envFrom", []):
                assert source["configMapRef"]["name"] in maps, where
            for e in c.get("env", []):
                if ref := e.get("valueFrom", {}).get("configMapKeyRef"):
                    assert ref["key"] in maps.get(ref["name"], set()), (where, ref)


def test_every_m2m_auth_variable_set_is_a_setting_of_the_server(kind: list[Obj]) -> None:
    known = {f"M2M_AUTH_{name.upper()}" for name in Settings.model_fields}
    config = generated(kind, "ConfigMap", "m2m-auth-config")["data"]
    set_names = set(config)
    for _, pod in pod_templates(kind):
        for c in containers(pod):
            set_names |= set(env_of(c))
    assert {n for n in set_names if n.startswith("M2M_AUTH_")} - known == set()
    assert config["M2M_AUTH_PRODUCTION"] == "true"


def test_the_trial_secrets_fit_together_and_open_the_in_cluster_postgres(kind: list[Obj]) -> None:
    server = decoded(generated(kind, "Secret", "m2m-auth"))
    postgres = decoded(generated(kind, "Secret", "m2m-auth-postgres"))
    statefulset = one(kind, "StatefulSet", "postgres")
    service = one(kind, "Service", "postgres")
    url = urlsplit(server["database-url"])

    assert url.scheme == "postgresql"
    assert (url.username, url.password) == (postgres["username"], postgres["password"])
    assert (url.hostname, url.port) == (service["metadata"]["name"], service["spec"]["ports"][0]["port"])
    assert url.path == "/" + env_of(statefulset["spec"]["template"]["spec"]["containers"][0])["POSTGRES_DB"]["value"]
    kek = server["key-encryption-key"]
    assert len(base64.urlsafe_b64decode(kek + "=" * (-len(kek) % 4))) == 32  # what production mode demands


def test_the_production_example_uses_managed_postgres_and_an_external_secret() -> None:
    objects = render(K8S / "overlays" / "production-example")
    deployment = one(objects, "Deployment", "m2m-auth")
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    docs = (K8S.parents[1] / "docs" / "kubernetes.md").read_text()

    assert {(o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] != "ConfigMap"} == {
        ("Deployment", "m2m-auth"), ("Service", "m2m-auth"), ("PodDisruptionBudget", "m2m-auth"),
        ("Job", "m2m-auth-migrate"),
    }  # fmt: skip
    assert deployment["spec"]["replicas"] >= 2
    assert generated(objects, "ConfigMap", "m2m-auth-config")["data"]["M2M_AUTH_ISSUER"].startswith("https://")
    refs = {e["valueFrom"]["secretKeyRef"]["name"] + "/" + e["valueFrom"]["secretKeyRef"]["key"]
            for e in server["env"] if "secretKeyRef" in e.get("valueFrom", {})}  # fmt: skip
    assert refs == {"m2m-auth/database-url", "m2m-auth/admin-token", "m2m-auth/key-encryption-key"}
    for key in ("database-url", "admin-token", "key-encryption-key"):  # the docs say how to create each
        assert f"--from-literal={key}=" in docs


# --- what scripts/e2e_kind.sh and the Istio example rely on --------------------------------------


def test_the_kind_overlay_runs_the_images_and_namespace_the_e2e_script_uses(kind: list[Obj]) -> None:
    images = {}
    for where, pod in pod_templates(kind):
        for c in containers(pod):
            images[(where, c["name"])] = (c["image"], c["imagePullPolicy"])

    assert images[("Deployment/m2m-auth", "server")] == (script_setting("SERVER_IMAGE"), "IfNotPresent")
    assert images[("Deployment/m2m-auth", "wait-for-schema")][0] == script_setting("SERVER_IMAGE")
    assert images[("Job/m2m-auth-migrate", "migrate")][0] == script_setting("SERVER_IMAGE")
    assert images[("Deployment/resource-server", "resource-server")] == (
        script_setting("RESOURCE_IMAGE"), "IfNotPresent",
    )  # fmt: skip
    namespaced = [o for o in kind if o["kind"] != "Namespace"]
    assert {o["metadata"]["namespace"] for o in namespaced} == {script_setting("NAMESPACE")}


def test_the_resource_server_bound_and_issuer_are_what_the_e2e_script_expects(kind: list[Obj]) -> None:
    container = one(kind, "Deployment", "resource-server")["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    config = generated(kind, "ConfigMap", "m2m-auth-config")

    assert env["RESOURCE_CACHE_MAX_TTL"]["value"] == script_setting("CACHE_MAX_TTL")
    assert env["RESOURCE_VALIDATION"]["value"] == "introspection"
    assert env["M2M_AUTH_ISSUER"]["valueFrom"]["configMapKeyRef"]["name"] == config["metadata"]["name"]
    issuer = urlsplit(config["data"]["M2M_AUTH_ISSUER"])
    namespace = script_setting("NAMESPACE")
    assert (issuer.hostname, issuer.port) == (f"m2m-auth.{namespace}.svc.cluster.local", SERVER_PORT)


def test_the_istio_example_trusts_the_issuer_and_jwks_of_the_kind_server(kind: list[Obj], istio: list[Obj]) -> None:
    issuer = generated(kind, "ConfigMap", "m2m-auth-config")["data"]["M2M_AUTH_ISSUER"]
    (rule,) = one(istio, "RequestAuthentication", "m2m-auth-jwt")["spec"]["jwtRules"]
    policy = one(istio, "AuthorizationPolicy", "resource-server")["spec"]
    resource_labels = one(kind, "Deployment", "resource-server")["spec"]["template"]["metadata"]["labels"]
    audience = env_of(one(kind, "Deployment", "resource-server")["spec"]["template"]["spec"]["containers"][0])

    assert rule["issuer"] == issuer
    assert rule["jwksUri"] == issuer + "/oauth/jwks.json"
    assert rule["audiences"] == [audience["RESOURCE_AUDIENCE"]["value"]]
    assert policy["action"] == "ALLOW"
    for obj in istio:
        assert obj["metadata"]["namespace"] == script_setting("NAMESPACE")
        assert obj["spec"]["selector"]["matchLabels"].items() <= resource_labels.items()
    principals = {p for r in policy["rules"] for f in r.get("from", []) for p in f["source"]["requestPrincipals"]}
    assert principals and all(p.startswith(issuer + "/") for p in principals)
    protected = [r for r in policy["rules"] if r["to"][0]["operation"]["paths"] == ["/protected"]]
    assert protected[0]["when"] == [{"key": "request.auth.claims[scope]", "values": ["read"]}]
