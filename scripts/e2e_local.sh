#!/usr/bin/env bash
# End to end, on this machine: the local twin of the seeds' KIND script (scripts/e2e_kind_extended.sh).
#
#   bash scripts/e2e_local.sh [--keep] [--loopback]
#
# Starts a throw-away PostgreSQL, migrates, starts the authorization server and three resource
# servers (examples/resource-server by introspection and in JWT mode, examples/resource-server-node),
# registers clients through the admin API, mints tokens with client credentials and checks, against
# each resource server: 401 without a token, 200 with a `read` token, 403 for a token without `read`,
# 401 after revocation (within RESOURCE_CACHE_MAX_TTL, set to 1 s here; the JWT one keeps accepting
# a revoked JWT until it expires, and the script checks that too). Then Service A
# (examples/service-a/call.py) calls both introspecting resource servers.
#
# As root with iproute2, each process is a host of its own: one network namespace each (db, auth,
# rs-python, rs-jwt, rs-node, service-a), joined by veth pairs to a bridge the script creates, on a
# private 10.231.N.0/24 that exists only inside this machine. Otherwise (or with --loopback) all of
# it runs on 127.0.0.1 with different ports, and the script says so.
#
# Needs the repository's .venv (the README's test command, `bash scripts/test.sh`, makes it), the
# PostgreSQL binaries (the same command installs them), node and npm. A failure prints the step that
# broke and the tail of each log. Everything is stopped and removed at exit, unless --keep: then it
# is left running and the script prints how to clean up.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

KEEP=0
FORCE_LOOPBACK=0
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    --loopback) FORCE_LOOPBACK=1 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "e2e_local.sh: unknown argument $arg (--keep, --loopback)" >&2; exit 2 ;;
  esac
done

# Settings from the caller's environment must not leak into the processes started here.
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(M2M_AUTH_|RESOURCE_|SERVICE_A_|SERVICE_B_)' || true)

CACHE_MAX_TTL=1 # RESOURCE_CACHE_MAX_TTL of the introspecting resource servers
CURRENT_STEP="start"
WORK=$(mktemp -d /tmp/m2m-e2e.XXXXXX)
chmod 755 "$WORK"
UNDO="$WORK/cleanup.sh"
LOGS=()
PID_auth="" PID_rs_python="" PID_rs_jwt="" PID_rs_node="" # set by start() (through eval)

step() {
  CURRENT_STEP="$*"
  echo "==> $*"
}
pass() { echo "    PASS  $*"; }
fail() {
  echo "e2e_local.sh: FAILED at step \"$CURRENT_STEP\": $*" >&2
  exit 1
}
on_err() {
  echo "e2e_local.sh: FAILED at step \"$CURRENT_STEP\" (line $1: $2 exited with $3)" >&2
}
trap 'on_err "$LINENO" "$BASH_COMMAND" "$?"' ERR

# Cleanup is a script of its own, written as things are made (newest first), so --keep can leave it.
cat >"$UNDO" <<'EOF'
#!/usr/bin/env bash
# Stops and removes what scripts/e2e_local.sh started (newest first).
stop_pid() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
EOF
UNDO_LINES=("rm -rf '$WORK'")
undo() { UNDO_LINES=("$*" "${UNDO_LINES[@]}"); }
write_undo() {
  { sed -n '1,/^}$/p' "$UNDO"; printf '%s\n' "${UNDO_LINES[@]}"; } >"$UNDO.new" && mv "$UNDO.new" "$UNDO"
}
on_exit() {
  local rc=$?
  trap - ERR
  if [ "$rc" -ne 0 ]; then
    for log in "${LOGS[@]}"; do
      [ -s "$log" ] || continue
      echo "---- last lines of $log" >&2
      tail -n 25 "$log" >&2 || true
    done
  fi
  write_undo
  if [ "$KEEP" -eq 1 ]; then
    echo "==> --keep: everything is left running; clean up with: bash $UNDO"
  else
    bash "$UNDO" >/dev/null 2>&1 || true
  fi
  if [ "$rc" -eq 0 ]; then echo "e2e_local.sh: all checks passed"; fi
  exit "$rc"
}
trap on_exit EXIT

PY="$REPO/.venv/bin/python"
M2M="$REPO/.venv/bin/m2m-auth"

json_get() { "$PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------------------------------------
step "prerequisites: .venv, PostgreSQL binaries, node and npm"
[ -x "$PY" ] && [ -x "$M2M" ] || fail "no .venv with m2m-auth: run 'bash scripts/test.sh' (the README's test command) first"
"$PY" -c 'import fastapi, uvicorn' 2>/dev/null || fail ".venv lacks fastapi/uvicorn: run 'bash scripts/test.sh' first"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -n 1 || true)
if [ -z "$PG_BIN" ] && command -v initdb >/dev/null; then PG_BIN=$(dirname "$(command -v initdb)"); fi
[ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || fail "PostgreSQL binaries not found: 'bash scripts/test.sh' installs them"
command -v node >/dev/null && command -v npm >/dev/null || fail "node and npm are needed for examples/resource-server-node"
if [ ! -d examples/resource-server-node/node_modules/express ]; then
  npm ci --prefix examples/resource-server-node --no-audit --no-fund >/dev/null
fi
AS_ROOT=0
[ "$(id -u)" -eq 0 ] && AS_ROOT=1
pass "tools found (PostgreSQL in $PG_BIN, node $(node --version))"

# ---------------------------------------------------------------------------------------------
step "network: one namespace per host, or loopback"
NETNS=0
ID=$(printf '%04x' $((RANDOM)))
if [ "$FORCE_LOOPBACK" -eq 0 ] && [ "$AS_ROOT" -eq 1 ] && command -v ip >/dev/null; then
  if ip netns add "m2m-$ID-probe" 2>/dev/null; then
    ip netns del "m2m-$ID-probe"
    NETNS=1
  fi
fi
declare -A HOST_IP
if [ "$NETNS" -eq 1 ]; then
  # A /24 of 10.231.0.0/16 that no interface of this machine uses yet.
  for _ in $(seq 20); do
    OCTET=$((RANDOM % 254 + 1))
    ip -o addr show | grep -q " 10\.231\.$OCTET\." || break
  done
  NET="10.231.$OCTET"
  BR="m2mbr$ID"
  ip link add "$BR" type bridge
  undo "ip link del '$BR' 2>/dev/null"
  ip addr add "$NET.1/24" dev "$BR"
  ip link set "$BR" up
  n=2
  for host in db auth rs-python rs-jwt rs-node service-a; do
    ns="m2m-$ID-$host"
    ip netns add "$ns"
    undo "ip netns del '$ns' 2>/dev/null"
    ip link add "m2m${ID}h$n" type veth peer name "m2m${ID}b$n"
    undo "ip link del 'm2m${ID}b$n' 2>/dev/null"
    ip link set "m2m${ID}h$n" netns "$ns"
    ip -n "$ns" link set "m2m${ID}h$n" name eth0
    ip -n "$ns" addr add "$NET.$n/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip link set "m2m${ID}b$n" master "$BR" up
    HOST_IP[$host]="$NET.$n"
    n=$((n + 1))
  done
  PG_PORT=5432 AUTH_PORT=8000 RS_PY_PORT=8081 RS_JWT_PORT=8081 RS_NODE_PORT=8082
  in_host() { local host=$1; shift; ip netns exec "m2m-$ID-$host" "$@"; }
  pass "network namespaces m2m-$ID-*: db ${HOST_IP[db]}, auth ${HOST_IP[auth]}, rs-python ${HOST_IP[rs-python]}, rs-jwt ${HOST_IP[rs-jwt]}, rs-node ${HOST_IP[rs-node]}, service-a ${HOST_IP[service-a]} (bridge $BR, $NET.1)"
else
  for host in db auth rs-python rs-jwt rs-node service-a; do HOST_IP[$host]=127.0.0.1; done
  PG_PORT=$(free_port) AUTH_PORT=$(free_port) RS_PY_PORT=$(free_port) RS_JWT_PORT=$(free_port) RS_NODE_PORT=$(free_port)
  in_host() { shift; "$@"; }
  echo "    NOTE  network namespaces unavailable (need root and iproute2) or --loopback: everything on 127.0.0.1, different ports"
  pass "loopback"
fi

# Starts a long-running process on a host; its output goes to $WORK/<name>.log.
start() {
  local name=$1 host=$2
  shift 2
  local log="$WORK/$name.log"
  LOGS+=("$log")
  # Not through the in_host function: $! must be the server's own pid (ip netns exec execs it).
  if [ "$NETNS" -eq 1 ]; then
    ip netns exec "m2m-$ID-$host" "$@" >"$log" 2>&1 &
  else
    "$@" >"$log" 2>&1 &
  fi
  local pid=$!
  undo "stop_pid $pid"
  eval "PID_${name//-/_}=$pid"
}
wait_http() { # name pid url [seconds]
  local deadline=$((SECONDS + ${4:-30}))
  until curl -fsS -o /dev/null --max-time 2 "$3" 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || fail "$1 exited (see its log below)"
    [ "$SECONDS" -lt "$deadline" ] || fail "$1 did not answer $3 within ${4:-30} s"
    sleep 0.1
  done
}

# ---------------------------------------------------------------------------------------------
step "PostgreSQL: a throw-away cluster on ${HOST_IP[db]}:$PG_PORT"
PG_ROOT="$WORK/pg"
mkdir -p "$PG_ROOT/sock"
pg() {
  if [ "$AS_ROOT" -eq 1 ]; then in_host db runuser -u postgres -- "$PG_BIN/$1" "${@:2}"; else in_host db "$PG_BIN/$1" "${@:2}"; fi
}
[ "$AS_ROOT" -eq 1 ] && chown -R postgres "$PG_ROOT"
(cd "$PG_ROOT" && pg initdb -D "$PG_ROOT/data" -A trust -U postgres --no-sync -E UTF8 >"$PG_ROOT/initdb.log" 2>&1) ||
  fail "initdb failed: $(tail -n 5 "$PG_ROOT/initdb.log")"
LOGS+=("$PG_ROOT/log")
if [ "$NETNS" -eq 1 ]; then echo "host all all $NET.0/24 trust" >>"$PG_ROOT/data/pg_hba.conf"; fi
undo "$( [ "$AS_ROOT" -eq 1 ] && echo "runuser -u postgres --") '$PG_BIN/pg_ctl' -D '$PG_ROOT/data' -m immediate -w stop >/dev/null 2>&1"
(cd "$PG_ROOT" && pg pg_ctl -D "$PG_ROOT/data" -l "$PG_ROOT/log" -w \
  -o "-p $PG_PORT -k $PG_ROOT/sock -c listen_addresses=${HOST_IP[db]} -c fsync=off" start >/dev/null)
"$PG_BIN/createdb" -h "${HOST_IP[db]}" -p "$PG_PORT" -U postgres m2m_auth
DATABASE_URL="postgresql://postgres@${HOST_IP[db]}:$PG_PORT/m2m_auth"
pass "PostgreSQL up: $DATABASE_URL"

# ---------------------------------------------------------------------------------------------
ISSUER="http://${HOST_IP[auth]}:$AUTH_PORT"
ADMIN_TOKEN="m2m_admin_e2e_$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')"
AUTH_ENV=(env M2M_AUTH_DATABASE_URL="$DATABASE_URL" M2M_AUTH_ISSUER="$ISSUER" M2M_AUTH_ADMIN_TOKEN="$ADMIN_TOKEN")

step "migrate the database (m2m-auth migrate)"
in_host auth "${AUTH_ENV[@]}" "$M2M" migrate >"$WORK/migrate.log" 2>&1 || fail "migrate failed: $(tail -n 5 "$WORK/migrate.log")"
pass "migrated"

step "start the authorization server at $ISSUER"
start auth auth "${AUTH_ENV[@]}" "$M2M" serve --host "${HOST_IP[auth]}" --port "$AUTH_PORT"
wait_http "the authorization server" "$PID_auth" "$ISSUER/readyz"
pass "server ready"

# ---------------------------------------------------------------------------------------------
step "register clients through the admin API"
register() { # json -> prints "client_id client_secret"
  local answer
  answer=$(curl -fsS --max-time 10 -X POST "$ISSUER/admin/clients" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'Content-Type: application/json' -d "$1") || fail "POST /admin/clients refused $1"
  echo "$(json_get client_id <<<"$answer") $(json_get client_secret <<<"$answer")"
}
creds=$(register '{"client_name": "service-b (python)", "scope": "", "audience": []}')
read -r RS_PY_ID RS_PY_SECRET <<<"$creds"
creds=$(register '{"client_name": "service-b (node)", "scope": "", "audience": []}')
read -r RS_NODE_ID RS_NODE_SECRET <<<"$creds"
creds=$(register '{"client_name": "service-a", "scope": "read", "audience": ["service-b"]}')
read -r A_ID A_SECRET <<<"$creds"
creds=$(register '{"client_name": "writer (no read)", "scope": "write", "audience": ["service-b"]}')
read -r W_ID W_SECRET <<<"$creds"
creds=$(register '{"client_name": "service-a (jwt)", "scope": "read", "audience": ["service-b"], "access_token_format": "jwt"}')
read -r J_ID J_SECRET <<<"$creds"
[ -n "$A_SECRET" ] && [ -n "$RS_NODE_SECRET" ] && [ -n "$J_SECRET" ] || fail "a registration returned no secret"
pass "registered service-a ($A_ID), a client without read ($W_ID), a JWT client ($J_ID), and each resource server's own client"

# ---------------------------------------------------------------------------------------------
step "start the resource servers (RESOURCE_CACHE_MAX_TTL=$CACHE_MAX_TTL)"
RS_PY_URL="http://${HOST_IP[rs-python]}:$RS_PY_PORT"
RS_JWT_URL="http://${HOST_IP[rs-jwt]}:$RS_JWT_PORT"
RS_NODE_URL="http://${HOST_IP[rs-node]}:$RS_NODE_PORT"
start rs-python rs-python env M2M_AUTH_ISSUER="$ISSUER" RESOURCE_CLIENT_ID="$RS_PY_ID" RESOURCE_CLIENT_SECRET="$RS_PY_SECRET" \
  RESOURCE_VALIDATION=introspection RESOURCE_AUDIENCE=service-b RESOURCE_CACHE_MAX_TTL="$CACHE_MAX_TTL" \
  HOST="${HOST_IP[rs-python]}" PORT="$RS_PY_PORT" "$PY" examples/resource-server/app.py
start rs-jwt rs-jwt env M2M_AUTH_ISSUER="$ISSUER" RESOURCE_VALIDATION=jwt RESOURCE_AUDIENCE=service-b \
  HOST="${HOST_IP[rs-jwt]}" PORT="$RS_JWT_PORT" "$PY" examples/resource-server/app.py
start rs-node rs-node env M2M_AUTH_ISSUER="$ISSUER" RESOURCE_CLIENT_ID="$RS_NODE_ID" RESOURCE_CLIENT_SECRET="$RS_NODE_SECRET" \
  RESOURCE_VALIDATION=introspection RESOURCE_AUDIENCE=service-b RESOURCE_CACHE_MAX_TTL="$CACHE_MAX_TTL" \
  HOST="${HOST_IP[rs-node]}" PORT="$RS_NODE_PORT" node examples/resource-server-node/server.js # = its `npm start`
wait_http "resource-server (python)" "$PID_rs_python" "$RS_PY_URL/healthz"
wait_http "resource-server (python, jwt)" "$PID_rs_jwt" "$RS_JWT_URL/healthz"
wait_http "resource-server-node" "$PID_rs_node" "$RS_NODE_URL/healthz"
pass "python $RS_PY_URL, python-jwt $RS_JWT_URL, node $RS_NODE_URL"

# ---------------------------------------------------------------------------------------------
step "mint tokens with client credentials"
mint() { # id secret scope -> access token
  local answer
  answer=$(curl -fsS --max-time 10 -u "$1:$2" -d grant_type=client_credentials -d "scope=$3" -d audience=service-b \
    "$ISSUER/oauth/token") || fail "POST /oauth/token refused client $1 (scope $3)"
  json_get access_token <<<"$answer"
}
READ_TOKEN=$(mint "$A_ID" "$A_SECRET" read)
WRITE_TOKEN=$(mint "$W_ID" "$W_SECRET" write)
JWT_TOKEN=$(mint "$J_ID" "$J_SECRET" read)
JWT_WRITE_LESS=$JWT_TOKEN # the JWT client only has read: POST /things (admin:write) must be 403
pass "an opaque read token, an opaque write token, a JWT read token"

# ---------------------------------------------------------------------------------------------
# expect NAME STATUS [curl args...]: the request must answer STATUS; 401/403 must carry a Bearer challenge.
expect() {
  local name=$1 want=$2 got
  shift 2
  got=$(curl -sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' --max-time 10 "$@") || fail "$name: request failed"
  [ "$got" = "$want" ] || fail "$name: expected $want, got $got: $(head -c 300 "$WORK/body")"
  if [ "$want" = 401 ] || [ "$want" = 403 ]; then
    grep -qi '^www-authenticate: Bearer' "$WORK/headers" || fail "$name: no 'WWW-Authenticate: Bearer' header"
  fi
  if [ "$want" = 403 ]; then
    grep -qi 'insufficient_scope' "$WORK/headers" || fail "$name: the challenge does not say insufficient_scope"
  fi
  pass "$name -> $got"
}

for rs in python node; do
  if [ "$rs" = python ]; then url=$RS_PY_URL; else url=$RS_NODE_URL; fi
  step "checks against the $rs resource server ($url)"
  expect "[$rs] 401 without a token" 401 "$url/protected"
  expect "[$rs] 401 with a bad token" 401 -H "Authorization: Bearer m2m_at_not-a-real-token" "$url/protected"
  expect "[$rs] 200 with a read token" 200 -H "Authorization: Bearer $READ_TOKEN" "$url/protected"
  expect "[$rs] 403 for a token without read" 403 -H "Authorization: Bearer $WRITE_TOKEN" "$url/protected"
  expect "[$rs] 403 for POST /things without admin:write" 403 -X POST -H "Authorization: Bearer $READ_TOKEN" "$url/things"
done

step "checks against the python resource server in JWT mode ($RS_JWT_URL)"
expect "[jwt] 401 without a token" 401 "$RS_JWT_URL/protected"
expect "[jwt] 401 with an opaque token (not a JWT)" 401 -H "Authorization: Bearer $READ_TOKEN" "$RS_JWT_URL/protected"
expect "[jwt] 200 with a JWT read token" 200 -H "Authorization: Bearer $JWT_TOKEN" "$RS_JWT_URL/protected"
expect "[jwt] 403 for POST /things without admin:write" 403 -X POST -H "Authorization: Bearer $JWT_WRITE_LESS" "$RS_JWT_URL/things"

step "Service A calls Service B with the SDK (examples/service-a/call.py)"
for url in "$RS_PY_URL" "$RS_NODE_URL"; do
  out=$(in_host service-a env M2M_AUTH_ISSUER="$ISSUER" SERVICE_A_CLIENT_ID="$A_ID" SERVICE_A_CLIENT_SECRET="$A_SECRET" \
    SERVICE_B_URL="$url" "$PY" examples/service-a/call.py 2>&1) || fail "service-a -> $url: $out"
  grep -q -- '-> 200' <<<"$out" || fail "service-a -> $url: $out"
  pass "[service-a] call to $url -> 200"
done

# ---------------------------------------------------------------------------------------------
step "revoke the read tokens (POST /oauth/revoke) and wait for the cache bound ($CACHE_MAX_TTL s)"
# Fresh cache entries first, so what follows measures the bound and not an entry that had expired already.
for url in "$RS_PY_URL" "$RS_NODE_URL"; do
  expect "[cache] 200 just before revocation ($url)" 200 -H "Authorization: Bearer $READ_TOKEN" "$url/protected"
done
curl -fsS --max-time 10 -u "$A_ID:$A_SECRET" -d token="$READ_TOKEN" "$ISSUER/oauth/revoke" >/dev/null
curl -fsS --max-time 10 -u "$J_ID:$J_SECRET" -d token="$JWT_TOKEN" "$ISSUER/oauth/revoke" >/dev/null
REVOKED_AT=$(date +%s.%N)
answer=$(curl -fsS --max-time 10 -u "$RS_PY_ID:$RS_PY_SECRET" -d token="$READ_TOKEN" "$ISSUER/oauth/introspect")
[ "$(json_get active <<<"$answer")" = False ] || fail "introspection still says active after revocation: $answer"
pass "revoked; introspection answers active=false at once"

# Poll both introspecting resource servers until each refuses the token. A cached answer may be
# reused for at most the bound after the introspection that made it, which came before the
# revocation: so no 200 may come later than the bound after it (+0.5 s for the requests themselves).
since_revocation() { awk -v now="$(date +%s.%N)" -v t0="$REVOKED_AT" 'BEGIN { printf "%.2f", now - t0 }'; }
declare -A LAST_OK=([python]="-" [node]="-") REFUSED_AT=()
while [ "${#REFUSED_AT[@]}" -lt 2 ]; do
  for rs in python node; do
    [ -z "${REFUSED_AT[$rs]:-}" ] || continue
    if [ "$rs" = python ]; then url=$RS_PY_URL; else url=$RS_NODE_URL; fi
    t=$(since_revocation)
    got=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $READ_TOKEN" "$url/protected")
    case "$got" in
      401) REFUSED_AT[$rs]=$t ;;
      200)
        LAST_OK[$rs]=$t
        awk -v t="$t" -v bound="$CACHE_MAX_TTL" 'BEGIN { exit !(t <= bound + 0.5) }' ||
          fail "[$rs] still accepts the revoked token $t s after revocation (bound $CACHE_MAX_TTL s)"
        ;;
      *) fail "[$rs] expected 200 (cached) or 401 after revocation, got $got" ;;
    esac
  done
  sleep 0.05
done
for rs in python node; do
  if [ "$rs" = python ]; then url=$RS_PY_URL; else url=$RS_NODE_URL; fi
  expect "[$rs] 401 after revocation (last accepted at ${LAST_OK[$rs]} s, refused from ${REFUSED_AT[$rs]} s; bound ${CACHE_MAX_TTL} s)" 401 \
    -H "Authorization: Bearer $READ_TOKEN" "$url/protected"
done
expect "[jwt] 200 after revocation (local JWT validation cannot see it; accepted until exp)" 200 \
  -H "Authorization: Bearer $JWT_TOKEN" "$RS_JWT_URL/protected"

step "done"
