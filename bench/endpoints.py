"""Throughput of the hot paths, side by side with a hello-world on the same stack, in one run.

    .venv/bin/python bench/endpoints.py [--db sqlite|postgres|both] [--seconds 8] [--quick]
        [--algs RS256,ES256] [--only REGEX]

The server (and PostgreSQL, durable: fsync on) run on CPU 0, wrk on CPU 1 (`taskset`), so the figures
are per core. One server per JWT signing algorithm (`--algs`); the opaque workloads run on the first.
Machines here are shared and noisy: read the ratios, not the absolute numbers. Every response's
status is checked by wrk's script (non-2xx are counted and reported). Needs `wrk` (Debian package).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._pg import PostgresCluster, find_pg_bin, free_port  # noqa: E402

ADMIN = "bench-admin-token-0123456789abcdef"
PIN_SERVER = ["taskset", "-c", "0"] if shutil.which("taskset") else []
PIN_LOAD = ["taskset", "-c", "1"] if shutil.which("taskset") else []

WRK_SCRIPT = textwrap.dedent(
    """
    wrk.method = os.getenv("METHOD")
    wrk.body = os.getenv("BODY")
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
    if os.getenv("AUTH") ~= "" then wrk.headers["Authorization"] = os.getenv("AUTH") end
    local bad = 0
    response = function(status, headers, body)
      if status ~= 200 then bad = bad + 1 end
      if os.getenv("EXPECT") ~= "" and not string.find(body, os.getenv("EXPECT"), 1, true) then bad = bad + 1 end
    end
    done = function(summary, latency, requests)
      io.write(string.format("RESULT %f %f %f %d %d\\n", summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, summary.requests))
    end
    """
)

HELLO_APP = textwrap.dedent(
    """
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def hello(request):
        await request.body()
        return Response(b'{"hello":"world"}', media_type="application/json")

    app = Starlette(routes=[Route("/", hello, methods=["GET", "POST"])])
    """
)


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def tree_cpu(pids: Sequence[int]) -> float:
    """CPU seconds used so far by these processes, their live descendants and the children they reaped."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    ticks, todo, seen = 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        fields = stats[pid]
        ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        todo.extend(children.get(pid, []))
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str,
    seconds: int,
    *,
    body: str = "",
    auth: str = "",
    expect: str = "",
    method: str = "POST",
    cpu_pids: Sequence[int] = (),
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT)
    env = {**os.environ, "METHOD": method, "BODY": body, "AUTH": auth, "EXPECT": expect}
    cmd = [*PIN_LOAD, "wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-s", f.name, url]
    cpu = tree_cpu(cpu_pids)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    cpu = tree_cpu(cpu_pids) - cpu
    os.unlink(f.name)
    match = re.search(r"RESULT (\S+) (\S+) (\S+) (\d+) (\d+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert match, out
    return {
        "rps": float(match[1]),
        "p50_ms": float(match[2]),
        "p99_ms": float(match[3]),
        "bad": int(match[4]) + (int(errors[1]) if errors else 0),
        "cpu_us": 1e6 * cpu / max(1, int(match[5])),
    }


def measure(url: str, seconds: int, runs: int, *, cpu_pids: Sequence[int] = (), **kw: str) -> dict[str, float]:
    """Median of `runs`; cpu_us: CPU time of `cpu_pids` (server, database) per request, which other load
    on the machine disturbs far less than the rate."""
    wrk(url, max(1, seconds // 3), **kw)  # warm-up
    results = [wrk(url, seconds, cpu_pids=cpu_pids, **kw) for _ in range(runs)]
    rps = [r["rps"] for r in results]
    return {
        "cpu_us": statistics.median(r["cpu_us"] for r in results),
        "rps": statistics.median(rps),
        "min": min(rps),
        "max": max(rps),
        "p50_ms": statistics.median(r["p50_ms"] for r in results),
        "p99_ms": statistics.median(r["p99_ms"] for r in results),
        "bad": sum(r["bad"] for r in results),
    }


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([*PIN_SERVER, *cmd], env=env, stdout=out, stderr=subprocess.STDOUT)


def bench_server(
    database_url: str,
    seconds: int,
    runs: int,
    workdir: Path,
    *,
    signing_alg: str = "RS256",
    only: str = "",
    db_pid: int | None = None,
) -> dict[str, dict[str, float]]:
    """The hot paths on one server; with another `signing_alg`, only its JWT workloads (opaque ones are the same).

    `only`: a regular expression; workloads whose names do not match it are skipped. `db_pid`: the
    database's main process, whose CPU time (with its backends') counts in `cpu_us` with the server's.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}
    env.update(
        M2M_AUTH_DATABASE_URL=database_url, M2M_AUTH_ADMIN_TOKEN=ADMIN, M2M_AUTH_ISSUER=url,
        M2M_AUTH_SIGNING_ALG=signing_alg,
    )  # fmt: skip
    exe = str(Path(sys.executable).parent / "m2m-auth")
    log = workdir / f"m2m-{signing_alg}.log"
    proc = start([exe, "serve", "--port", str(port), "--migrate", "--log-level", "warning"], env, log)
    results: dict[str, dict[str, float]] = {}
    try:
        wait_up(f"{url}/healthz")
        admin = {"Authorization": f"Bearer {ADMIN}"}

        def client(fmt: str) -> tuple[str, str]:
            body = {"client_name": f"bench-{fmt}", "scope": "read", "access_token_format": fmt}
            c = httpx.post(f"{url}/admin/clients", json=body, headers=admin).json()
            basic = "Basic " + base64.b64encode(f"{c['client_id']}:{c['client_secret']}".encode()).decode()
            token = httpx.post(
                f"{url}/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": basic}
            ).json()["access_token"]
            return basic, token

        opaque_auth, opaque_token = client("opaque")
        jwt_auth, jwt_token = client("jwt")
        grant = "grant_type=client_credentials"
        token_url, introspect_url = f"{url}/oauth/token", f"{url}/oauth/introspect"
        workloads = {
            "token, opaque": (token_url, grant, opaque_auth, "access_token"),
            f"token, JWT {signing_alg}": (token_url, grant, jwt_auth, "access_token"),
            "introspect, opaque": (introspect_url, f"token={opaque_token}", opaque_auth, '"active":true'),
            f"introspect, JWT {signing_alg}": (introspect_url, f"token={jwt_token}", opaque_auth, '"active":true'),
        }
        for name, (target, body, auth, expect) in workloads.items():
            if (signing_alg != "RS256" and "JWT" not in name) or (only and not re.search(only, name)):
                continue
            pids = (proc.pid,) if db_pid is None else (proc.pid, db_pid)
            results[name] = measure(target, seconds, runs, cpu_pids=pids, body=body, auth=auth, expect=expect)
    finally:
        proc.terminate()
        proc.wait(10)
    return results


def bench_hello(seconds: int, runs: int, workdir: Path) -> dict[str, float]:
    app = workdir / "hello_app.py"
    app.write_text(HELLO_APP)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "hello_app:app",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--app-dir",
        str(workdir),
    ]
    proc = start(cmd, dict(os.environ), workdir / "hello.log")
    try:
        wait_up(f"http://127.0.0.1:{port}/")
        return measure(f"http://127.0.0.1:{port}/", seconds, runs, cpu_pids=(proc.pid,), body="x=1", expect="hello")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 s, one run: checks the harness, measures nothing")
    parser.add_argument(
        "--algs", default="RS256,ES256", help="JWT signing algorithms, one server each (opaque runs on the first)"
    )
    parser.add_argument("--only", default="", help="regular expression: run only the workloads it matches")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.runs = 2, 1
    if not shutil.which("wrk"):
        sys.exit("bench/endpoints.py needs wrk: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="m2m-bench-"))
    table: dict[str, dict[str, dict[str, float]]] = {
        "hello (Starlette on uvicorn)": {"-": bench_hello(args.seconds, args.runs, workdir)}
    }
    algs = [alg.strip() for alg in args.algs.split(",") if alg.strip()]
    if args.db in ("sqlite", "both"):
        for alg in algs:
            db = f"sqlite:///{workdir}/bench-{alg}.db"
            for name, r in bench_server(db, args.seconds, args.runs, workdir, signing_alg=alg, only=args.only).items():
                table.setdefault(name, {})["sqlite"] = r
    if args.db in ("postgres", "both"):
        bin_dir = find_pg_bin()
        if bin_dir is None:
            sys.exit("PostgreSQL binaries not found")
        cluster = PostgresCluster(bin_dir, durable=True, pin=PIN_SERVER)
        cluster.start()  # the database shares CPU 0 with the server, as the benchmark issue asks
        try:
            for alg in algs:
                db = cluster.create_database(f"bench_{alg.lower()}")
                pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
                results = bench_server(
                    db, args.seconds, args.runs, workdir, signing_alg=alg, only=args.only, db_pid=pid
                )
                for name, r in results.items():
                    table.setdefault(name, {})["postgres"] = r
        finally:
            cluster.destroy()
    hello = table["hello (Starlette on uvicorn)"]["-"]
    # cpu us/req: CPU time of the server (and PostgreSQL) per request; /hello (CPU) compares those, which
    # other jobs on a shared machine disturb far less than the rates in /hello.
    print(
        f"\n{'workload':30} {'db':9} {'req/s':>8} {'min':>8} {'max':>8} {'p50 ms':>7} {'p99 ms':>7} {'/hello':>7} "
        f"{'cpu us/req':>10} {'/hello (CPU)':>12} {'bad':>4}"
    )
    for name, per_db in table.items():
        for db, r in per_db.items():
            print(
                f"{name:30} {db:9} {r['rps']:8.0f} {r['min']:8.0f} {r['max']:8.0f} {r['p50_ms']:7.2f} "
                f"{r['p99_ms']:7.2f} {r['rps'] / hello['rps']:7.2f} {r['cpu_us']:10.0f} "
                f"{hello['cpu_us'] / r['cpu_us'] if r['cpu_us'] else 0:12.2f} {int(r['bad']):4d}"
            )
    (workdir / "results.json").write_text(json.dumps(table))
    print(f"\nraw results: {workdir / 'results.json'}")
    if any(r["bad"] for per_db in table.values() for r in per_db.values()):
        sys.exit("some responses were not the expected 200 answers")


if __name__ == "__main__":
    main()
