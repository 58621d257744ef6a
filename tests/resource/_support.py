"""Helpers for the resource-server SDK tests: a fake clock, the server's introspection counter, polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx

__all__ = ["FakeClock", "introspections", "wait_until", "SERVICE_AUDIENCE"]

T = TypeVar("T")
SERVICE_AUDIENCE = "https://service-b.example"


class FakeClock:
    """Starts at the real time (tokens come from a real server) and moves only when told."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def introspections(url: str) -> float:
    """Introspection answers the server has given so far (m2m_auth_introspections_total, all results)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("m2m_auth_introspections_total{")
    )


def wait_until(probe: Callable[[], T | None], what: str, deadline: float = 15.0, interval: float = 0.05) -> T:
    end = time.monotonic() + deadline
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"after {deadline} s still waiting for: {what}")
        time.sleep(interval)
