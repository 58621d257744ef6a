#!/usr/bin/env bash
# End to end on KIND (Kubernetes in Docker): the seeds' scripts/e2e_kind_extended.sh, for this repository.
#
#   bash scripts/e2e_kind.sh [--keep-cluster] [--keep-namespace] [--cluster NAME]
#
# Creates a KIND cluster (or uses the one of that name, default m2m-auth-e2e), builds the server image
# (Dockerfile) and the example resource server's (examples/resource-server/Dockerfile), loads both into the
# cluster and applies deploy/k8s/overlays/kind with fresh random secrets. Waits for PostgreSQL, the migration
# Job and the rollouts, registers clients through the admin API, mints a token with client credentials and
# checks, at the resource server: 401 without a token, 401 with a bad one, 200 with a `read` token, 403 for a
# token without `read`, and 401 after revocation (within its introspection cache bound, 1 s here). Requests
# go through `kubectl port-forward`, from this machine.
#
# Needs docker with a running container engine, kind, kubectl, curl and python3. At exit it deletes the
# namespace, and the cluster if this run created it. --keep-cluster keeps the cluster (the namespace goes);
# --keep-namespace keeps the namespace, and so the cluster too. A failure prints the step that broke, the
# pods, the recent events and the logs.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

CLUSTER=m2m-auth-e2e
NAMESPACE=m2m-auth                          # the namespace of deploy/k8s/overlays/kind
SERVER_IMAGE=m2m-auth:dev                   # the images deploy/k8s/overlays/kind names (tests/deploy checks)
RESOURCE_IMAGE=m2m-auth-resource-server:dev
CACHE_MAX_TTL=1                             # RESOURCE_CACHE_MAX_TTL in deploy/k8s/overlays/kind
TIMEOUT=300s                                # for each rollout and the migration Job

KEEP_CLUSTER=0
KEEP_NAMESPACE=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --keep-cluster) KEEP_CLUSTER=1 ;;
    --keep-namespace) KEEP_NAMESPACE=1 ;;
    --cluster)
      [ "$#" -ge 2 ] || { echo "e2e_kind.sh: --cluster needs a name" >&2; exit 2; }
      CLUSTER=$2
      shift
      ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "e2e_kind.sh: unknown argument $1 (--keep-cluster, --keep-namespace, --cluster NAME, --help)" >&2; exit 2 ;;
  esac
  shift
done

CURRENT_STEP="start"
step() {
  CURRENT_STEP="$*"
  echo "==> $*"
}
pass() { echo "    PASS  $*"; }
fail() {
  echo "e2e_kind.sh: FAILED at step \"$CURRENT_STEP\": $*" >&2
  exit 1
}
trap 'echo "e2e_kind.sh: FAILED at step \"$CURRENT_STEP\" (line $LINENO: $BASH_COMMAND exited with $?)" >&2' ERR

# ---------------------------------------------------------------------------------------------
step "prerequisites: docker (with a running engine), kind, kubectl, curl, python3"
missing=()
for tool in docker kind kubectl curl python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  fail "not installed: ${missing[*]}. KIND runs Kubernetes in containers: it needs docker with a running" \
    "engine, kind (https://kind.sigs.k8s.io) and kubectl. Without a container engine, run the local twin" \
    "of this script instead: bash scripts/e2e_local.sh"
fi
docker info >/dev/null 2>&1 || fail "docker is installed, but no container engine answers ('docker info' failed): start one, or run bash scripts/e2e_local.sh"
pass "all there (kind $(kind version 2>/dev/null | awk '{print $2}'), kubectl $(kubectl version --client -o json 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])'))"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/m2m-e2e-kind.XXXXXX") # mode 700: it holds this run's secrets
CREATED_CLUSTER=0
APPLIED=0 # from then on a failure prints the pods, events and logs
KUBECTL=(kubectl --context "kind-$CLUSTER")
PF_PIDS=()

diagnose() {
  echo "---- pods, jobs and recent events in namespace $NAMESPACE" >&2
  "${KUBECTL[@]}" -n "$NAMESPACE" get pods,jobs -o wide >&2 || true
  "${KUBECTL[@]}" -n "$NAMESPACE" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 25 >&2 || true
  for target in job/m2m-auth-migrate deployment/m2m-auth deployment/resource-server statefulset/postgres; do
    echo "---- logs of $target (last 40 lines)" >&2
    "${KUBECTL[@]}" -n "$NAMESPACE" logs "$target" --all-containers --tail=40 >&2 2>/dev/null || true
  done
  for log in "$WORK"/pf-*.log; do
    [ -s "$log" ] || continue
    echo "---- $log" >&2
    tail -n 10 "$log" >&2
  done
}
on_exit() {
  local rc=$?
  trap - ERR
  for pid in "${PF_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ] && [ "$APPLIED" -eq 1 ]; then diagnose; fi
  if [ "$KEEP_NAMESPACE" -eq 1 ]; then
    echo "==> --keep-namespace: cluster $CLUSTER and namespace $NAMESPACE are left; clean up with:"
    echo "    kind delete cluster --name $CLUSTER   (or: kubectl --context kind-$CLUSTER delete namespace $NAMESPACE)"
  elif [ "$KEEP_CLUSTER" -eq 1 ] || [ "$CREATED_CLUSTER" -eq 0 ]; then
    # A cluster this run did not create is never deleted: only the namespace goes.
    "${KUBECTL[@]}" delete namespace "$NAMESPACE" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    if [ "$KEEP_CLUSTER" -eq 1 ]; then echo "==> --keep-cluster: cluster $CLUSTER is left; delete it with: kind delete cluster --name $CLUSTER"; fi
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  if [ "$rc" -eq 0 ]; then echo "e2e_kind.sh: all checks passed"; fi
  exit "$rc"
}
trap on_exit EXIT

random() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
json_get() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
k() { "${KUBECTL[@]}" -n "$NAMESPACE" "$@"; }

# ---------------------------------------------------------------------------------------------
step "KIND cluster $CLUSTER"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  pass "using the existing cluster $CLUSTER (it is not deleted at exit)"
else
  kind create cluster --name "$CLUSTER" --wait 120s
  CREATED_CLUSTER=1
  pass "created"
fi
if "${KUBECTL[@]}" get namespace "$NAMESPACE" >/dev/null 2>&1; then
  # Its PostgreSQL volume holds the password of an earlier run; this run's random secrets would not open it.
  KEEP_NAMESPACE=1 # leave it as it was found
  fail "namespace $NAMESPACE exists already (an earlier --keep-namespace run?): delete it first with" \
    "kubectl --context kind-$CLUSTER delete namespace $NAMESPACE"
fi

# ---------------------------------------------------------------------------------------------
step "build the images and load them into the cluster"
docker build --quiet -t "$SERVER_IMAGE" . >/dev/null
docker build --quiet -t "$RESOURCE_IMAGE" -f examples/resource-server/Dockerfile . >/dev/null
kind load docker-image "$SERVER_IMAGE" "$RESOURCE_IMAGE" --name "$CLUSTER" >/dev/null
pass "$SERVER_IMAGE and $RESOURCE_IMAGE loaded"

# ---------------------------------------------------------------------------------------------
step "apply deploy/k8s/overlays/kind with random secrets"
PG_PASSWORD=$(random)
ADMIN_TOKEN="m2m_admin_$(random)"
KEK=$(python3 -c 'import base64, secrets; print(base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode())')
mkdir "$WORK/overlay"
# kustomize takes only relative paths to another kustomization.
KIND_OVERLAY=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$REPO/deploy/k8s/overlays/kind" "$WORK/overlay")
# The trial overlay as it is, with its two Secrets replaced (the names keep their content hash, so the pods
# refer to these).
cat >"$WORK/overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $NAMESPACE
resources:
  - $KIND_OVERLAY
secretGenerator:
  - name: m2m-auth
    behavior: replace
    literals:
      - database-url=postgresql://m2m_auth:$PG_PASSWORD@postgres:5432/m2m_auth
      - admin-token=$ADMIN_TOKEN
      - key-encryption-key=$KEK
  - name: m2m-auth-postgres
    behavior: replace
    literals:
      - username=m2m_auth
      - password=$PG_PASSWORD
EOF
APPLIED=1
"${KUBECTL[@]}" apply -k "$WORK/overlay" >"$WORK/apply.log" || fail "kubectl apply failed: $(tail -n 5 "$WORK/apply.log")"
pass "applied ($(grep -c . "$WORK/apply.log") objects)"

# ---------------------------------------------------------------------------------------------
step "wait for PostgreSQL, the migration Job and the server rollout"
k rollout status statefulset/postgres --timeout="$TIMEOUT" >/dev/null
deadline=$((SECONDS + ${TIMEOUT%s}))
until [ "$(k get job m2m-auth-migrate -o jsonpath='{.status.succeeded}')" = 1 ]; do
  [ "$(k get job m2m-auth-migrate -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}')" != True ] ||
    fail "the migration Job failed"
  [ "$SECONDS" -lt "$deadline" ] || fail "the migration Job did not complete within $TIMEOUT"
  sleep 2
done
pass "migration Job complete: $(k logs job/m2m-auth-migrate --tail=1)"
k rollout status deployment/m2m-auth --timeout="$TIMEOUT" >/dev/null
ready=$(k get deployment m2m-auth -o jsonpath='{.status.readyReplicas}')
[ "${ready:-0}" -ge 2 ] || fail "expected at least 2 ready server replicas, got ${ready:-0}"
restarts=$(k get pods -l app.kubernetes.io/component=server -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{" "}{end}')
for n in $restarts; do
  [ "$n" -eq 0 ] || fail "a server container restarted ($restarts): it should wait for the schema in its init container, not crash"
done
pass "$ready server replicas ready, no restarts"

# Starts `kubectl port-forward` to service $1 port $2 on a free local port, and sets PF_PORT to it.
port_forward() {
  local log="$WORK/pf-$1.log"
  PF_PORT=""
  # Not through the k function: $! must be kubectl's own pid, for the cleanup to stop it.
  "${KUBECTL[@]}" -n "$NAMESPACE" port-forward "service/$1" ":$2" >"$log" 2>&1 &
  PF_PIDS+=("$!")
  for _ in $(seq 100); do
    PF_PORT=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log" | head -n 1)
    [ -z "$PF_PORT" ] || return 0
    sleep 0.1
  done
  fail "kubectl port-forward to service/$1 did not start: $(tail -n 3 "$log")"
}
wait_http() { # url
  for _ in $(seq 150); do
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  fail "$1 did not answer within about 30 s"
}

port_forward m2m-auth 8000
AUTH="http://127.0.0.1:$PF_PORT"
wait_http "$AUTH/readyz"
issuer=$(curl -fsS --max-time 10 "$AUTH/.well-known/oauth-authorization-server" | json_get issuer)
pass "server at $AUTH (port-forward), issuer $issuer"

# ---------------------------------------------------------------------------------------------
step "register clients through the admin API"
register() { # json -> prints "client_id client_secret"
  local answer
  answer=$(curl -fsS --max-time 10 -X POST "$AUTH/admin/clients" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'Content-Type: application/json' -d "$1") || fail "POST /admin/clients refused $1"
  echo "$(json_get client_id <<<"$answer") $(json_get client_secret <<<"$answer")"
}
creds=$(register '{"client_name": "service-b (resource server)", "scope": "", "audience": []}')
read -r RS_ID RS_SECRET <<<"$creds"
creds=$(register '{"client_name": "service-a", "scope": "read", "audience": ["service-b"]}')
read -r A_ID A_SECRET <<<"$creds"
creds=$(register '{"client_name": "writer (no read)", "scope": "write", "audience": ["service-b"]}')
read -r W_ID W_SECRET <<<"$creds"
if [ -z "$RS_SECRET" ] || [ -z "$A_SECRET" ] || [ -z "$W_SECRET" ]; then fail "a registration returned no secret"; fi
pass "registered the resource server's own client ($RS_ID), service-a ($A_ID) and a client without read ($W_ID)"

step "give the resource server its credentials (Secret resource-server-credentials) and wait for it"
printf '%s' "$RS_ID" >"$WORK/client-id"
printf '%s' "$RS_SECRET" >"$WORK/client-secret"
k create secret generic resource-server-credentials --from-file=client-id="$WORK/client-id" \
  --from-file=client-secret="$WORK/client-secret" --dry-run=client -o yaml | k apply -f - >/dev/null
k rollout restart deployment/resource-server >/dev/null # its pod waited for the Secret
k rollout status deployment/resource-server --timeout="$TIMEOUT" >/dev/null
port_forward resource-server 8081
RS="http://127.0.0.1:$PF_PORT"
wait_http "$RS/healthz"
pass "resource server at $RS (port-forward)"

# ---------------------------------------------------------------------------------------------
step "mint tokens with client credentials"
mint() { # id secret scope -> access token
  local answer
  answer=$(curl -fsS --max-time 10 -u "$1:$2" -d grant_type=client_credentials -d "scope=$3" -d audience=service-b \
    "$AUTH/oauth/token") || fail "POST /oauth/token refused client $1 (scope $3)"
  json_get access_token <<<"$answer"
}
READ_TOKEN=$(mint "$A_ID" "$A_SECRET" read)
WRITE_TOKEN=$(mint "$W_ID" "$W_SECRET" write)
pass "a read token and a write token"

# expect NAME STATUS [curl args...]: the request must answer STATUS; 401/403 must carry a Bearer challenge.
expect() {
  local name=$1 want=$2 got
  shift 2
  got=$(curl -sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' --max-time 10 "$@") || fail "$name: request failed"
  [ "$got" = "$want" ] || fail "$name: expected $want, got $got: $(head -c 300 "$WORK/body")"
  if [ "$want" = 401 ] || [ "$want" = 403 ]; then
    grep -qi '^www-authenticate: Bearer' "$WORK/headers" || fail "$name: no 'WWW-Authenticate: Bearer' header"
  fi
  pass "$name -> $got"
}

step "checks against the resource server"
expect "401 without a token" 401 "$RS/protected"
expect "401 with a bad token" 401 -H "Authorization: Bearer m2m_at_not-a-real-token" "$RS/protected"
expect "200 with a read token" 200 -H "Authorization: Bearer $READ_TOKEN" "$RS/protected"
expect "403 for a token without read" 403 -H "Authorization: Bearer $WRITE_TOKEN" "$RS/protected"

# ---------------------------------------------------------------------------------------------
step "revoke the read token and wait for the cache bound ($CACHE_MAX_TTL s)"
expect "200 just before revocation" 200 -H "Authorization: Bearer $READ_TOKEN" "$RS/protected"
curl -fsS --max-time 10 -u "$A_ID:$A_SECRET" -d token="$READ_TOKEN" "$AUTH/oauth/revoke" >/dev/null
REVOKED_AT=$SECONDS
answer=$(curl -fsS --max-time 10 -u "$RS_ID:$RS_SECRET" -d token="$READ_TOKEN" "$AUTH/oauth/introspect")
[ "$(json_get active <<<"$answer")" = False ] || fail "introspection still says active after revocation: $answer"
pass "revoked; introspection answers active=false at once"
# A cached answer may live CACHE_MAX_TTL seconds; allow 2 s more for the port-forward's round trips.
until [ "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $READ_TOKEN" "$RS/protected")" = 401 ]; do
  [ $((SECONDS - REVOKED_AT)) -le $((CACHE_MAX_TTL + 2)) ] ||
    fail "the resource server still accepts the revoked token $((SECONDS - REVOKED_AT)) s after revocation"
  sleep 0.2
done
expect "401 after revocation" 401 -H "Authorization: Bearer $READ_TOKEN" "$RS/protected"

step "done"
