"""The Purger itself, in process, on both databases: what it deletes, in what batches, under which lock."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from m2m_auth.server.storage import migrate
from m2m_auth.server.storage.sql.engine import create_engine
from m2m_auth.server.storage.sql.purge import Purger, PurgeResult

from .._pg import free_port
from ._db import migrated, plant_tokens, query, scalar

NOW = 1_900_000_000


class FixedClock:
    def now(self) -> float:
        return float(NOW)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[str, int]] = []
        self.rounds: list[PurgeResult] = []
        self.skipped = 0
        self.failed = 0
        self.live: list[int] = []

    def purge_batch(self, table: str, rows: int) -> None:
        self.batches.append((table, rows))

    def purge_round(self, result: PurgeResult) -> None:
        self.rounds.append(result)

    def purge_skipped(self) -> None:
        self.skipped += 1

    def purge_failed(self) -> None:
        self.failed += 1

    def live_tokens(self, count: int) -> None:
        self.live.append(count)


async def _with_purgers(url: str, count: int, work: Callable[..., Any], **options: Any) -> Any:
    engines = [create_engine(url) for _ in range(count)]  # an engine each: like separate replicas
    purgers = [Purger(engine, clock=FixedClock(), **options) for engine in engines]
    try:
        return await work(*purgers)
    finally:
        for purger in purgers:
            await purger.close()
        for engine in engines:
            await engine.dispose()


def test_rows_expired_at_or_before_now_go_in_batches_no_larger_than_the_batch_size_and_nothing_else(
    backend: str, database_factory: Callable[[str], str]
) -> None:
    url = migrated(database_factory(backend))
    plant_tokens(url, "expired", [NOW - i for i in range(35)])  # NOW itself included: inactive at NOW
    plant_tokens(url, "live", [NOW + 1, NOW + 3600])
    plant_tokens(url, "revoked", [NOW + 3600], revoked_at=NOW - 10)  # revoked, not expired: kept
    query(
        url,
        "INSERT INTO clients (client_id, client_name, scope, audience, grant_types, token_endpoint_auth_method,"
        " metadata, disabled, created_at, updated_at) VALUES ('c', 'c', '', '[]', '[]', 'client_secret_basic', '{}',"
        " false, 0, 0)",
    )
    for digest, expires_at in ((b"\x01" * 32, None), (b"\x02" * 32, NOW), (b"\x03" * 32, NOW + 60)):
        query(
            url,
            "INSERT INTO client_secrets (client_id, digest, created_at, expires_at) VALUES ('c', :d, 0, :e)",
            d=digest, e=expires_at,
        )  # fmt: skip
    events = Recorder()

    result = asyncio.run(_with_purgers(url, 1, lambda p: p.run_round(), batch_size=10, events=events))

    assert [n for table, n in events.batches if table == "tokens"] == [10, 10, 10, 5]
    assert result.removed == {"tokens": 35, "revoked_jtis": 0, "used_assertions": 0, "client_secrets": 1}
    assert sorted(query(url, "SELECT client_id, expires_at FROM tokens")) == [
        ("live", NOW + 1), ("live", NOW + 3600), ("revoked", NOW + 3600),
    ]  # fmt: skip
    assert sorted(query(url, "SELECT expires_at FROM client_secrets"), key=str) == [(NOW + 60,), (None,)]
    assert events.rounds == [result]


def test_a_second_purger_skips_its_rounds_while_the_first_holds_the_lock_and_purges_once_it_is_released(
    backend: str, database_factory: Callable[[str], str]
) -> None:
    url = migrated(database_factory(backend))

    async def scenario(first: Purger, second: Purger) -> None:
        assert await first.run_round() is not None
        await asyncio.to_thread(plant_tokens, url, "x", [NOW - 1] * 3)
        assert await second.run_round() is None
        assert await first.run_round() is not None  # the leader stays the leader
        assert await second.run_round() is None
        await first.close()
        await asyncio.to_thread(plant_tokens, url, "x", [NOW - 1] * 2)
        taken_over = await second.run_round()
        assert taken_over is not None and taken_over.removed["tokens"] == 2

    asyncio.run(_with_purgers(url, 2, scenario))
    assert scalar(url, "SELECT count(*) FROM tokens") == 0


def test_a_failing_database_costs_rounds_never_the_loop_and_the_log_names_no_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"postgresql://m2m:hunter2-not-logged@127.0.0.1:{free_port()}/nothing"  # nothing listens there
    events = Recorder()

    async def scenario() -> None:
        engine = create_engine(url, timeout=1)
        purger = Purger(engine, events=events)
        loop = asyncio.create_task(purger.run_forever(0.05))
        deadline = time.monotonic() + 10
        while events.failed < 3:
            assert time.monotonic() < deadline and not loop.done()
            await asyncio.sleep(0.02)
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
        await purger.close()
        await engine.dispose()

    with caplog.at_level(logging.DEBUG, logger="m2m_auth"):
        asyncio.run(scenario())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all("purge round failed" in w for w in warnings)
    assert "hunter2" not in caplog.text
    assert events.rounds == [] and events.skipped == 0


def test_the_loop_purges_again_once_the_database_is_back(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"
    url = f"sqlite:///{folder}/m2m-auth.db"
    events = Recorder()

    async def scenario() -> None:
        engine = create_engine(url)
        purger = Purger(engine, clock=FixedClock(), events=events)
        loop = asyncio.create_task(purger.run_forever(0.05))
        deadline = time.monotonic() + 10
        while events.failed < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        folder.mkdir()
        await migrate.upgrade(engine)
        await asyncio.to_thread(plant_tokens, url, "x", [NOW - 1] * 4 + [NOW + 10])
        while not any(r.removed["tokens"] for r in events.rounds):
            assert time.monotonic() < deadline and not loop.done()
            await asyncio.sleep(0.02)
        while not events.live or events.live[-1] != 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await purger.close()
        await engine.dispose()

    asyncio.run(scenario())
    assert scalar(url, "SELECT count(*) FROM tokens") == 1


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_vacuum_never_truncates_the_purged_tables_which_would_lock_out_issuance(
    backend: str, database_factory: Callable[[str], str]
) -> None:
    url = migrated(database_factory(backend))
    options = dict(
        query(
            url,
            "SELECT relname, array_to_string(reloptions, ',') FROM pg_class"
            " WHERE relname IN ('tokens', 'revoked_jtis', 'used_assertions') AND relkind = 'r'",
        )
    )
    assert options == dict.fromkeys(("tokens", "revoked_jtis", "used_assertions"), "vacuum_truncate=false")
