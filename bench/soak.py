"""Soak: sustained token issuance on PostgreSQL; the token table must stay flat while the server purges.

Issues opaque tokens at a fixed rate through the real HTTP API for a fixed time, with a short TTL and
the server's own background purge, and samples every few seconds:

- the row count and the on-disk size of the token table (PostgreSQL: pg_total_relation_size),
- the issuance latency of every request, split into requests that overlapped a purge round and
  requests that did not (the rounds' start and end come from the server's /metrics).

Targets (issue #8), each measured as a ratio within the same run:
- rows flat at about rate x (TTL + interval): the peak after warm-up within 20 % of it;
- disk size flat after the first cycles: the largest size after warm-up at most 10 % over the size
  at the end of warm-up;
- issuance p99 while a purge runs at most 1.5x the p99 between purges.

    python bench/soak.py                # the issue's run: 10 min, 500 tokens/s, TTL 60 s, interval 60 s
    python bench/soak.py --quick        # 40 s, 100 tokens/s, TTL 5 s, interval 5 s (CI runs this)

Server and PostgreSQL are pinned to CPU 0 and this load generator to CPU 1 when `taskset` and two
cores are there. Traffic goes to 127.0.0.1 only, and the run is bounded in requests and in time.
Writes soak.json, soak.csv, summary.md and (with matplotlib, `pip install -e '.[bench]'`) soak.png
into --out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._pg import PostgresCluster, find_pg_bin, free_port  # noqa: E402 - the repository's own helpers

ADMIN_TOKEN = "soak-admin-token-0123456789abcdef0123456789"
MAX_IN_FLIGHT = 64  # connections: requests beyond that wait for one (and count as lag)


@dataclass
class Config:
    rate: float
    duration: float
    ttl: int
    interval: float
    sample: float
    batch_size: int
    warmup: float = 0.0  # set from the others: TTL + 2 intervals

    def __post_init__(self) -> None:
        self.warmup = self.ttl + 2 * self.interval


@dataclass
class Sample:
    t: float  # seconds since the load started
    rows: int
    expired_rows: int
    table_bytes: int  # heap only
    total_bytes: int  # heap, indexes and TOAST
    p99_ms: float | None  # issuance p99 of the requests that ended in this sample's period
    issued: int
    load_1m: float  # the machine's load average: another job on these cores disturbs the run
    dead_rows: int = 0  # deleted rows that vacuum has not reclaimed yet
    autovacuums: int = 0  # autovacuum runs on tokens so far: each one reads and cleans every index


@dataclass
class Round:
    start: float  # epoch seconds
    end: float
    rows: int


@dataclass
class Load:
    sends: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    errors: int = 0
    max_lag: float = 0.0  # how far behind its schedule the generator sent a request, at worst


# --- processes ----------------------------------------------------------------------------------


def pin(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def start_server(database_url: str, config: Config, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_AUTH_")}
    env.update(
        M2M_AUTH_DATABASE_URL=database_url,
        M2M_AUTH_ADMIN_TOKEN=ADMIN_TOKEN,
        M2M_AUTH_ISSUER=f"http://127.0.0.1:{port}",
        M2M_AUTH_LOG_LEVEL="warning",
        M2M_AUTH_PURGE_INTERVAL=str(config.interval),
        M2M_AUTH_PURGE_BATCH_SIZE=str(config.batch_size),
        M2M_AUTH_ACCESS_TOKEN_TTL=str(config.ttl),
    )
    cli = [sys.executable, "-m", "m2m_auth"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [*pin(0), *cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}: see {log_path}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the server did not start: see {log_path}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- load, samples, purge rounds -------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection sending one fixed request: cheap enough that one core of
    load generator drives what one core of server and database can answer (httpx cannot)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def issue(url: str, client: dict[str, str], config: Config, load: Load, done: asyncio.Event) -> None:
    """Open loop: request i is sent at t0 + i / rate, whatever the answers before it took."""
    port = int(url.rsplit(":", 1)[1])
    credentials = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode("ascii")
    body = b"grant_type=client_credentials"
    raw = (
        f"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {credentials}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened: list[Connection] = []
    for _ in range(MAX_IN_FLIGHT):
        connection = await Connection.open(port)
        opened.append(connection)
        idle.put_nowait(connection)

    async def one(scheduled: float) -> None:
        connection = await idle.get()  # all busy: the request waits, and its lag shows in max_lag
        sent = time.time()
        load.max_lag = max(load.max_lag, sent - scheduled)
        try:
            status = await connection.request(raw)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            load.errors += 1
            opened.remove(connection)
            connection.close()
            replacement = await Connection.open(port)
            opened.append(replacement)
            idle.put_nowait(replacement)
            return
        if status == 200:
            load.sends.append(sent)
            load.ends.append(time.time())
        else:
            load.errors += 1
        idle.put_nowait(connection)

    tasks: set[asyncio.Task[None]] = set()
    total = int(config.rate * config.duration)
    t0 = time.time()
    try:
        for i in range(total):
            scheduled = t0 + i / config.rate
            delay = scheduled - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=60)
    finally:
        for task in tasks:
            task.cancel()
        for connection in opened:
            connection.close()
        done.set()


async def sample_table(dsn: str, config: Config, t0: float, samples: list[Sample], done: asyncio.Event) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            now = int(time.time())
            row = await conn.fetchrow(
                "SELECT count(*) AS rows, count(*) FILTER (WHERE expires_at <= $1) AS expired,"
                " pg_relation_size('tokens') AS heap, pg_total_relation_size('tokens') AS total FROM tokens",
                now,
            )
            assert row is not None
            vacuum = await conn.fetchrow(
                "SELECT n_dead_tup, autovacuum_count FROM pg_stat_user_tables WHERE relname = 'tokens'"
            )
            load_1m = os.getloadavg()[0]
            samples.append(
                Sample(
                    time.time() - t0, row["rows"], row["expired"], row["heap"], row["total"], None, 0, load_1m,
                    vacuum["n_dead_tup"] if vacuum else 0, vacuum["autovacuum_count"] if vacuum else 0,
                )
            )  # fmt: skip
            if done.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=config.sample)
    finally:
        await conn.close()


async def watch_rounds(url: str, rounds: list[Round], done: asyncio.Event) -> None:
    """Each purge round's window, from the server's metrics: it ended at the last-success time and
    lasted what the duration histogram's sum grew by."""
    last: tuple[float, float, float] | None = None
    rows_at_last_round = 0.0  # the rows counter grows batch by batch, the round's figures at its end
    async with httpx.AsyncClient(timeout=5) as http:
        while not done.is_set():
            try:
                body = (await http.get(f"{url}/metrics")).text
            except httpx.HTTPError:
                await asyncio.sleep(0.25)
                continue
            values = {"count": 0.0, "sum": 0.0, "end": 0.0, "rows": 0.0}
            for family in text_string_to_metric_families(body):
                for s in family.samples:
                    if s.name == "m2m_auth_purge_duration_seconds_count":
                        values["count"] = s.value
                    elif s.name == "m2m_auth_purge_duration_seconds_sum":
                        values["sum"] = s.value
                    elif s.name == "m2m_auth_purge_last_success_timestamp_seconds":
                        values["end"] = s.value
                    elif s.name == "m2m_auth_purged_rows_total" and s.labels.get("table") == "tokens":
                        values["rows"] = s.value
            current = (values["count"], values["sum"], values["rows"])
            if last is not None and current[0] > last[0]:
                took = (current[1] - last[1]) / (current[0] - last[0])
                rounds.append(Round(values["end"] - took, values["end"], int(current[2] - rows_at_last_round)))
                rows_at_last_round = current[2]
            last = current
            await asyncio.sleep(0.25)


# --- analysis -------------------------------------------------------------------------------------


def p99(values: list[float]) -> float | None:
    if len(values) < 10:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def analyse(config: Config, load: Load, samples: list[Sample], rounds: list[Round], t0: float) -> dict[str, Any]:
    windows = sorted((r.start, r.end) for r in rounds)
    starts = [w[0] for w in windows]

    def overlaps(sent: float, ended: float) -> bool:
        i = bisect.bisect_right(starts, ended) - 1  # the last round that started before the request ended
        return i >= 0 and windows[i][1] >= sent

    steady_from = t0 + config.warmup
    during: list[float] = []
    between: list[float] = []
    by_end: list[tuple[float, float]] = []
    for sent, ended in zip(load.sends, load.ends, strict=True):
        latency = ended - sent
        by_end.append((ended - t0, latency))
        if sent < steady_from:
            continue
        (during if overlaps(sent, ended) else between).append(latency)

    by_end.sort()
    ends = [e for e, _ in by_end]
    per_second: list[list[float]] = []  # [second, p99 ms, requests]: the tail's shape, to line up with rounds
    for second in range(int(config.duration) + 1):
        lo, hi = bisect.bisect_left(ends, second), bisect.bisect_left(ends, second + 1)
        if (q := p99([lat for _, lat in by_end[lo:hi]])) is not None:
            per_second.append([second, round(q * 1000, 2), hi - lo])
    previous = 0.0
    for s in samples:  # each sample's p99: the requests that ended since the sample before
        lo, hi = bisect.bisect_left(ends, previous), bisect.bisect_right(ends, s.t)
        window = [lat for _, lat in by_end[lo:hi]]
        s.p99_ms = None if (q := p99(window)) is None else round(q * 1000, 2)
        s.issued = hi - lo
        previous = s.t

    achieved = len(load.sends) / config.duration
    expected_peak = achieved * (config.ttl + config.interval)
    steady = [s for s in samples if s.t >= config.warmup]
    at_warmup = steady[0] if steady else None
    peak_rows = max((s.rows for s in steady), default=0)
    max_bytes = max((s.total_bytes for s in steady), default=0)
    p99_during, p99_between = p99(during), p99(between)
    rows_ratio = peak_rows / expected_peak if expected_peak else None
    disk_ratio = max_bytes / at_warmup.total_bytes if at_warmup and at_warmup.total_bytes else None
    latency_ratio = p99_during / p99_between if p99_during and p99_between else None
    purging = [r for r in rounds if r.rows]
    return {
        "config": asdict(config),
        "load": {
            "requests_ok": len(load.sends),
            "errors": load.errors,
            "achieved_rate": round(achieved, 1),
            "max_schedule_lag_ms": round(load.max_lag * 1000, 1),
            "max_load_average_1m": max((s.load_1m for s in samples), default=0.0),
        },
        "rows": {
            "expected_peak": round(expected_peak),
            "expected_trough": round(achieved * config.ttl),
            "peak_after_warmup": peak_rows,
            "min_after_warmup": min((s.rows for s in steady), default=0),
            "final": samples[-1].rows if samples else 0,
            "ratio_peak_to_expected": round(rows_ratio, 3) if rows_ratio else None,
            "target_met": rows_ratio is not None and 0.8 <= rows_ratio <= 1.2,
        },
        "disk": {
            "total_bytes_at_warmup_end": at_warmup.total_bytes if at_warmup else None,
            "max_total_bytes_after_warmup": max_bytes,
            "final_total_bytes": samples[-1].total_bytes if samples else None,
            "ratio_max_to_warmup_end": round(disk_ratio, 3) if disk_ratio else None,
            "target_met": disk_ratio is not None and disk_ratio <= 1.10,
        },
        "latency": {
            "requests_during_purge": len(during),
            "requests_between_purges": len(between),
            "p99_during_purge_ms": round(p99_during * 1000, 2) if p99_during else None,
            "p99_between_purges_ms": round(p99_between * 1000, 2) if p99_between else None,
            "p50_between_purges_ms": round(sorted(between)[len(between) // 2] * 1000, 2) if between else None,
            "ratio_p99_during_to_between": round(latency_ratio, 3) if latency_ratio else None,
            "target_met": latency_ratio is not None and latency_ratio <= 1.5,
        },
        "purge_rounds": {
            "rounds": len(rounds),
            "rounds_that_deleted": len(purging),
            "rows_deleted": sum(r.rows for r in rounds),
            "longest_round_s": round(max((r.end - r.start for r in rounds), default=0), 3),
            "windows": [[round(r.start - t0, 3), round(r.end - t0, 3), r.rows] for r in rounds],
        },
        "samples": [asdict(s) for s in samples],
        "p99_per_second": per_second,
    }


def summary_markdown(result: dict[str, Any]) -> str:
    c, rows, disk, lat = result["config"], result["rows"], result["disk"], result["latency"]
    ok = {True: "met", False: "NOT met"}
    return "\n".join(
        [
            f"Run: {c['duration']:.0f} s at {c['rate']:.0f} tokens/s (achieved {result['load']['achieved_rate']}), "
            f"TTL {c['ttl']} s, purge interval {c['interval']:.0f} s, batch {c['batch_size']}, "
            f"samples every {c['sample']:.0f} s, warm-up {c['warmup']:.0f} s; "
            f"{result['load']['errors']} errors.",
            "",
            "| target | measured | ratio | verdict |",
            "| --- | --- | --- | --- |",
            f"| rows flat at rate x (TTL + interval) = {rows['expected_peak']} (within 20 %) | peak "
            f"{rows['peak_after_warmup']}, trough {rows['min_after_warmup']} after warm-up | "
            f"{rows['ratio_peak_to_expected']} | {ok[rows['target_met']]} |",
            f"| disk size flat after the first cycles (max after warm-up <= 1.10 x size at its end) | "
            f"{_mib(disk['total_bytes_at_warmup_end'])} -> max {_mib(disk['max_total_bytes_after_warmup'])} | "
            f"{disk['ratio_max_to_warmup_end']} | {ok[disk['target_met']]} |",
            f"| issuance p99 during a purge <= 1.5 x p99 between purges | {lat['p99_during_purge_ms']} ms "
            f"({lat['requests_during_purge']} requests) vs {lat['p99_between_purges_ms']} ms "
            f"({lat['requests_between_purges']}) | {lat['ratio_p99_during_to_between']} | {ok[lat['target_met']]} |",
            "",
        ]
    )


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MiB"


def chart(result: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    samples, c = result["samples"], result["config"]
    t = [s["t"] for s in samples]
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    axes[0].plot(t, [s["rows"] for s in samples], marker=".", label="rows in tokens")
    axes[0].axhline(result["rows"]["expected_peak"], color="grey", ls="--", label="rate x (TTL + interval)")
    axes[0].axhline(result["rows"]["expected_trough"], color="grey", ls=":", label="rate x TTL")
    axes[0].set_ylabel("rows")
    axes[1].plot(t, [s["total_bytes"] / 2**20 for s in samples], marker=".", label="table + indexes")
    axes[1].plot(t, [s["table_bytes"] / 2**20 for s in samples], marker=".", label="table (heap)")
    axes[1].set_ylabel("on disk (MiB)")
    axes[1].set_ylim(bottom=0)
    axes[2].plot(t, [s["p99_ms"] for s in samples], marker=".", label="issuance p99 per sample period")
    axes[2].axhline(result["latency"]["p99_between_purges_ms"] or 0, color="grey", ls="--", label="p99 between purges")
    axes[2].set_ylabel("p99 (ms)")
    axes[2].set_xlabel("seconds since the load started")
    for ax in axes:
        for start, end, _ in result["purge_rounds"]["windows"]:
            ax.axvspan(start, max(end, start + 0.5), color="orange", alpha=0.3, lw=0)
        ax.axvline(c["warmup"], color="black", lw=0.5)
        ax.legend(loc="upper left", fontsize="small")
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"soak: {c['rate']:.0f} tokens/s, TTL {c['ttl']} s, purge every {c['interval']:.0f} s "
        "(orange: purge rounds; black line: end of warm-up)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# --- main -----------------------------------------------------------------------------------------


async def run(config: Config, database_url: str, out: Path) -> dict[str, Any]:
    proc, url = start_server(database_url, config, out / "server.log")
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
            created = admin.post("/admin/clients", json={"client_name": "soak", "access_token_ttl": config.ttl})
            created.raise_for_status()
            client = created.json()
        load, samples, rounds = Load(), [], []
        done = asyncio.Event()
        t0 = time.time()
        workers = [
            sample_table(database_url, config, t0, samples, done),
            watch_rounds(url, rounds, done),
            issue(url, client, config, load, done),
        ]
        await asyncio.wait_for(asyncio.gather(*workers), timeout=config.duration + 120)
    finally:
        stop(proc)
    return analyse(config, load, samples, rounds, t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 s, 100/s, TTL 5 s, interval 5 s (CI)")
    parser.add_argument("--rate", type=float, help="tokens per second (500; quick 100)")
    parser.add_argument("--duration", type=float, help="seconds of load (600; quick 40)")
    parser.add_argument("--ttl", type=int, help="token lifetime, seconds (60; quick 5)")
    parser.add_argument("--interval", type=float, help="purge interval, seconds (60; quick 5)")
    parser.add_argument("--sample", type=float, help="seconds between samples (10; quick 2)")
    parser.add_argument("--batch-size", type=int, default=1000, help="M2M_AUTH_PURGE_BATCH_SIZE (1000)")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a throw-away cluster)")
    parser.add_argument("--out", type=Path, default=Path("bench/out"), help="folder for the results")
    parser.add_argument("--no-chart", action="store_true", help="skip soak.png even if matplotlib is there")
    args = parser.parse_args(argv)
    defaults = (100, 40, 5, 5, 2) if args.quick else (500, 600, 60, 60, 10)
    rate, duration, ttl, interval, sample = (
        given if given is not None else default
        for given, default in zip(
            (args.rate, args.duration, args.ttl, args.interval, args.sample), defaults, strict=True
        )
    )
    config = Config(rate, duration, ttl, interval, sample, args.batch_size)
    if config.rate * config.duration > 1_000_000 or config.duration > 3600:
        parser.error("bounded: at most 10^6 requests and one hour")
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` too stops the server and removes the cluster
    if pin(1):
        os.sched_setaffinity(0, {1})  # the load generator; server and PostgreSQL get CPU 0

    cluster: PostgresCluster | None = None
    database_url = args.database_url
    if database_url is None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            print("soak: PostgreSQL binaries not found (scripts/test.sh installs them)", file=sys.stderr)
            return 2
        cluster = PostgresCluster(bin_dir, durable=True, pin=pin(0))
        cluster.start()
        database_url = cluster.create_database("soak")
    try:
        result = uvloop.run(run(config, database_url, args.out))
    finally:
        if cluster is not None:
            shutil.copy(cluster.root / "log", args.out / "postgresql.log")
            cluster.destroy()
    result["environment"] = {"cpus": os.cpu_count(), "pinned": bool(pin(0)), "python": sys.version.split()[0]}
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    with open(args.out / "soak.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(result["samples"][0]) if result["samples"] else ["t"])
        writer.writeheader()
        writer.writerows(result["samples"])
    summary = summary_markdown(result)
    (args.out / "summary.md").write_text(summary)
    drawn = not args.no_chart and chart(result, args.out / "soak.png")
    print(summary)
    print(f"results in {args.out}/ (soak.json, soak.csv, summary.md{', soak.png' if drawn else '; no chart'})")
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
