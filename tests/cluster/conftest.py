"""Three replicas of `m2m-auth serve` on one PostgreSQL database, behind nginx."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from .._nginx import Nginx, find_nginx
from .._pg import PostgresCluster, free_port
from .._server import Api, ServerProcess

Client = dict[str, Any]


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    binary = find_nginx()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx not found; the test command installs it (scripts/test.sh)")
        pytest.skip("nginx not found (run scripts/test.sh to install it)")
    return binary


@dataclass
class Cluster:
    replicas: list[ServerProcess]
    apis: list[Api]  # one per replica, talking to it directly
    lb: Nginx
    lb_api: Api  # through nginx

    def ensure_running(self) -> None:
        for replica in self.replicas:
            if replica.proc is None or replica.proc.poll() is not None:
                replica.start()


@pytest.fixture(scope="module")
def cluster(
    pg_cluster: PostgresCluster, database_factory: Callable[[str], str], nginx_binary: str
) -> Iterator[Cluster]:
    url = database_factory("postgres")
    lb_port = free_port()
    # The replicas share one public issuer: the load balancer's address. The client cache keeps its
    # default TTL, so a change seen everywhere within a second came through the database's notifications.
    replicas = [ServerProcess(url, issuer=f"http://127.0.0.1:{lb_port}") for _ in range(3)]
    replicas[0].start()  # migrates the empty database; the others then find it at head
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(ServerProcess.start, replicas[1:]))
    lb = Nginx(nginx_binary, [f"127.0.0.1:{r.port}" for r in replicas], port=lb_port).start()
    cluster = Cluster(replicas, [Api(r.url) for r in replicas], lb, Api(lb.url))
    yield cluster
    for api in [*cluster.apis, cluster.lb_api]:
        api.close()
    lb.destroy()
    for replica in replicas:
        replica.stop()


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    """The cluster with all three replicas up (a test before may have killed or stopped one)."""
    cluster.ensure_running()
    return cluster


@dataclass
class Load:
    """`workers` threads asking nginx for tokens, each with a keep-alive client of its own.

    Each pauses `pause` seconds between requests: the load stays concurrent, while the tokens to check
    afterwards stay few enough to introspect quickly and a restarting replica still gets some CPU.

    A request that got no answer, or an answer other than a token, lands in `failures`. One whose answer
    began (status line and headers passed on by nginx) but broke off lands in `cut_short`: nginx cannot
    retry a response it has started to send, so only the caller can.
    """

    url: str
    clients: list[Client]
    workers: int = 20
    pause: float = 0.1
    tokens: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cut_short: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, args=(self.clients[n % len(self.clients)],), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _work(self, client: Client) -> None:
        auth = (client["client_id"], client["client_secret"])
        with httpx.Client(base_url=self.url, timeout=15) as http:
            while not self._stop.is_set():
                self._ask(http, auth)
                self._stop.wait(self.pause)

    def _ask(self, http: httpx.Client, auth: tuple[str, str]) -> None:
        form = {"grant_type": "client_credentials"}
        try:
            with http.stream("POST", "/oauth/token", data=form, auth=auth) as response:
                try:
                    response.read()
                except httpx.HTTPError as exc:
                    self.cut_short.append(f"{response.status_code}, then {type(exc).__name__}: {exc}")
                    return
        except httpx.HTTPError as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            return
        if response.status_code == 200:
            self.tokens.append(response.json()["access_token"])
        else:  # the body is an OAuth error: no secret or token in it
            self.failures.append(f"{response.status_code} {response.text[:200]}")

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Block until the clients have received `count` tokens in all (the load keeps running)."""
        deadline = time.monotonic() + timeout
        while len(self.tokens) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.tokens) >= count, f"the load got {len(self.tokens)} tokens, not {count}: {self.failures[:5]}"


def inactive_tokens(urls: list[str], caller: Client, tokens: list[str]) -> int:
    """How many of `tokens` do not introspect active, asking the replicas at `urls` in turn."""
    auth = (caller["client_id"], caller["client_secret"])

    def count_inactive(part: int) -> int:
        https = [httpx.Client(base_url=url, timeout=15) for url in urls]
        try:
            inactive = 0
            for n, token in enumerate(tokens[part::8]):
                response = https[n % len(https)].post("/oauth/introspect", data={"token": token}, auth=auth)
                inactive += not (response.status_code == 200 and response.json()["active"] is True)
            return inactive
        finally:
            for http in https:
                http.close()

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(count_inactive, range(8)))
