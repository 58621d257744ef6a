"""Operations: /healthz, /readyz, /metrics, and the events that feed them and the logs."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, overload

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from m2m_auth.errors import OAuthError, ServerError
from m2m_auth.server.asgi.convert import encode_error, error_to_response, json_response, send_raw
from m2m_auth.server.asgi.endpoints import FormEndpoint
from m2m_auth.server.core.events import Events
from m2m_auth.server.core.introspection_cache import IntrospectionCache
from m2m_auth.server.storage.sql.purge import PurgeResult

__all__ = ["Metrics", "healthz", "readyz", "metrics", "settle_heap"]

log = logging.getLogger("m2m_auth.server")


class Metrics(Events):
    """Prometheus metrics on a registry of this app's own, and log lines for refused requests."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "m2m_auth_http_requests", "HTTP requests by route and status", ["route", "method", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "m2m_auth_http_request_duration_seconds", "Request latency by route", ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )  # fmt: skip
        self.tokens_issued = Counter(
            "m2m_auth_tokens_issued", "Access tokens issued", ["format"], registry=self.registry
        )
        self.introspections = Counter(
            "m2m_auth_introspections", "Introspection answers by result", ["result"], registry=self.registry
        )
        self.refused = Counter(
            "m2m_auth_requests_refused", "OAuth requests refused, by error code", ["endpoint", "error"],
            registry=self.registry,
        )  # fmt: skip
        self._active = self.introspections.labels("active")
        self._inactive = self.introspections.labels("inactive")
        # Label lookups cost more than the increments: the children are kept (few: routes x methods x statuses).
        self._request_counts: dict[tuple[str, str, int], Counter] = {}
        self._issued_counts: dict[str, Counter] = {}
        # Purge of expired rows (storage.sql.purge): rounds by result show which replica purges.
        self.purged_rows = Counter(
            "m2m_auth_purged_rows", "Expired rows deleted by the purge, by table", ["table"], registry=self.registry
        )
        self.purge_duration = Histogram(
            "m2m_auth_purge_duration_seconds", "Duration of purge rounds that ran",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
            registry=self.registry,
        )  # fmt: skip
        self.purge_last_success = Gauge(
            "m2m_auth_purge_last_success_timestamp_seconds", "End of the last purge round that succeeded (epoch)",
            registry=self.registry,
        )  # fmt: skip
        self.purge_rounds = Counter(
            "m2m_auth_purge_rounds", "Purge rounds: purged (this replica holds the purge lock), skipped "
            "(another replica does), failed (database error)", ["result"], registry=self.registry,
        )  # fmt: skip
        self.live_token_count = Gauge(
            "m2m_auth_live_tokens", "Stored tokens not yet expired (counted once per purge interval)",
            registry=self.registry,
        )  # fmt: skip
        for result in ("purged", "skipped", "failed"):
            self.purge_rounds.labels(result)
        # Cache invalidation between replicas (storage.sql.changes); 0 while disconnected or on SQLite.
        self.change_feed_up = Gauge(
            "m2m_auth_change_feed_connected", "1 while this replica hears other replicas' changes (PostgreSQL)",
            registry=self.registry,
        )  # fmt: skip
        self.changes_received = Counter(
            "m2m_auth_change_notifications", "Change notifications received from the database", registry=self.registry
        )

    def watch_introspection_cache(self, cache: IntrospectionCache) -> None:
        """Read at scrape time: counting in the cache costs the hot path an integer increment."""
        self.registry.register(_IntrospectionCacheCollector(cache))

    def token_issued(self, client_id: str, token_format: str) -> None:
        child = self._issued_counts.get(token_format)
        if child is None:
            child = self._issued_counts[token_format] = self.tokens_issued.labels(token_format)
        child.inc()

    def count_request(self, route: str, method: str, status: int) -> None:
        key = (route, method, status)
        child = self._request_counts.get(key)
        if child is None:
            child = self._request_counts[key] = self.requests.labels(route, method, str(status))
        child.inc()

    def introspected(self, active: bool) -> None:
        (self._active if active else self._inactive).inc()

    def request_refused(self, endpoint: str, error: str, detail: str) -> None:
        self.refused.labels(endpoint, error).inc()
        # detail names clients and checks, never secrets or tokens (see core.client_auth)
        log.info("%s request refused: %s (%s)", endpoint, error, detail)

    def purge_batch(self, table: str, rows: int) -> None:
        self.purged_rows.labels(table).inc(rows)

    def purge_round(self, result: PurgeResult) -> None:
        self.purge_rounds.labels("purged").inc()
        self.purge_duration.observe(result.duration)
        self.purge_last_success.set(result.started_at + result.duration)

    def purge_skipped(self) -> None:
        self.purge_rounds.labels("skipped").inc()

    def purge_failed(self) -> None:
        self.purge_rounds.labels("failed").inc()

    def live_tokens(self, count: int) -> None:
        self.live_token_count.set(count)

    def change_feed_connected(self, connected: bool) -> None:
        self.change_feed_up.set(1 if connected else 0)

    def change_received(self) -> None:
        self.changes_received.inc()

    @overload
    def instrument(self, route: str, endpoint: FormEndpoint) -> _InstrumentedForm: ...

    @overload
    def instrument(
        self, route: str, endpoint: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]: ...

    def instrument(
        self, route: str, endpoint: FormEndpoint | Callable[[Request], Awaitable[Response]]
    ) -> _InstrumentedForm | Callable[[Request], Awaitable[Response]]:
        if isinstance(endpoint, FormEndpoint):
            return _InstrumentedForm(self, route, endpoint)
        latency = self.latency.labels(route)

        async def instrumented(request: Request) -> Response:
            start = time.perf_counter()
            try:
                response = await endpoint(request)
            except Exception:  # a bug: logged with its traceback, answered as JSON, counted
                log.exception("unexpected error on %s %s", request.method, route)
                response = error_to_response(ServerError("internal error"))
            latency.observe(time.perf_counter() - start)
            self.count_request(route, request.method, response.status_code)
            return response

        instrumented.__name__ = getattr(endpoint, "__name__", route)
        return instrumented


class _IntrospectionCacheCollector(Collector):
    def __init__(self, cache: IntrospectionCache) -> None:
        self._cache = cache

    def collect(self) -> Any:
        lookups = CounterMetricFamily(
            "m2m_auth_introspection_cache_lookups", "Introspection cache lookups by result", labels=["result"]
        )
        lookups.add_metric(["hit"], self._cache.hits)
        lookups.add_metric(["miss"], self._cache.misses)
        yield lookups
        yield GaugeMetricFamily(
            "m2m_auth_introspection_cache_entries", "Active tokens in this process's introspection cache",
            value=len(self._cache),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "m2m_auth_introspection_cache_enabled", "1 while the introspection cache answers (PostgreSQL, "
            "notifications connected, a size above 0)", value=int(self._cache.enabled),
        )  # fmt: skip


class _InstrumentedForm:
    """A FormEndpoint with latency, counts and a JSON 500 for bugs; still a plain ASGI app (an object,
    not a function, so Starlette's Route passes it scope, receive and send)."""

    def __init__(self, metrics: Metrics, route: str, endpoint: FormEndpoint) -> None:
        self._metrics = metrics
        self._route = route
        self._endpoint = endpoint
        self._latency = metrics.latency.labels(route)
        self.__name__ = endpoint.__name__

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        try:
            response = await self._endpoint.answer(scope, receive)
        except Exception:  # a bug: logged with its traceback, answered as JSON, counted
            log.exception("unexpected error on %s %s", scope["method"], self._route)
            response = encode_error(ServerError("internal error"))
        if response is None:  # the client went away: nothing to answer or count
            return
        self._latency.observe(time.perf_counter() - start)
        self._metrics.count_request(self._route, scope["method"], response[0])
        await send_raw(send, response)


def settle_heap() -> None:
    """Once started: keep the start-up heap out of the garbage collector's way.

    Everything allocated by imports and start-up (over 100,000 objects) is moved to the permanent
    generation, and the youngest generation is collected every 10,000 net allocations instead of
    700. Otherwise objects of requests in flight get promoted to the oldest generation, and every
    so often a full collection walks the whole heap: pauses of tens of milliseconds that were the
    tail of the latency (bench/README.md). Requests free almost everything by reference counting.
    """
    gc.collect()
    gc.freeze()
    threshold0, threshold1, threshold2 = gc.get_threshold()
    gc.set_threshold(max(threshold0, 10_000), threshold1, threshold2)


async def healthz(request: Request) -> Response:
    return json_response(200, {"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await request.app.state.storage.ping()
    except OAuthError as exc:
        return error_to_response(exc)
    return json_response(200, {"status": "ok"})


async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), 200, media_type=CONTENT_TYPE_LATEST)
