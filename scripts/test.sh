#!/usr/bin/env bash
# Installs everything the test suite needs, then runs all of it: SQLite and PostgreSQL.
# Extra arguments go to pytest (e.g. `scripts/test.sh -k introspection`).
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# `bench`: the peers and charts of the benchmarks, whose quick versions tests/bench runs.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[server,postgres,test,bench]'

# Node's `jose` for the interop tests (tests/interop/node) and Express for the Node resource server
# that scripts/e2e_local.sh runs (examples/resource-server-node), exact versions from their lock files.
# Without Node those tests skip, except in CI, where a missing npm fails the run here.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  npm ci --prefix tests/interop/node --no-audit --no-fund
  npm ci --prefix examples/resource-server-node --no-audit --no-fund
  npm ci --prefix bench/peers/oidc-provider --no-audit --no-fund # the peer of bench/compare.py
elif [ "${CI:-}" = "true" ]; then
  echo "scripts/test.sh: node and npm are needed for tests/interop/node and examples/resource-server-node (Node 20 or later)" >&2
  exit 1
fi

# PostgreSQL from Debian's packages, when its binaries are missing. The tests start a
# throw-away cluster of their own (as the postgres user when run as root) and stop it.
# curl drives scripts/e2e_local.sh; iproute2 gives it a network namespace per service.
missing=""
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing="$missing postgresql"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
# nginx balances three replicas in tests/cluster (Debian puts it in /usr/sbin, off a normal user's PATH).
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v shellcheck >/dev/null 2>&1 || missing="$missing shellcheck" # tests/deploy lints scripts/*.sh
command -v wrk >/dev/null 2>&1 || missing="$missing wrk" # the load generator of bench/ (tests/bench)
if [ -n "$missing" ]; then
  echo "scripts/test.sh: installing from Debian's packages:$missing" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

if [ "$#" -eq 0 ]; then  # the whole run also lints; a run narrowed by arguments only tests
  .venv/bin/ruff check src tests
  .venv/bin/ruff format --check src tests
  .venv/bin/mypy src
fi
exec .venv/bin/pytest "$@"
