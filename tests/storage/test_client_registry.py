"""The per-process client cache on real storage (SQLite): one read per client when entries expire under load."""

from __future__ import annotations

import asyncio
from pathlib import Path

from m2m_auth.server.core.clients import ClientRegistry
from m2m_auth.server.core.models import Client
from m2m_auth.server.storage import migrate
from m2m_auth.server.storage.sql.store import SqlStorage


class CountingStorage(SqlStorage):
    reads = 0

    async def get_client(self, client_id: str) -> Client | None:
        self.reads += 1
        await asyncio.sleep(0.01)  # a read that takes a while, as under load
        return await super().get_client(client_id)


class ManualClock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def now(self) -> float:
        return self.t


def test_concurrent_misses_share_one_read_and_an_invalidation_is_never_undone_by_a_read_under_way(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        storage = CountingStorage.from_url(f"sqlite:///{tmp_path / 'c.db'}")
        await migrate.upgrade(storage.engine)
        await storage.create_client(Client("c1", "one"))
        clock = ManualClock()
        registry = ClientRegistry(storage, clock, ttl=5)
        try:
            got = await asyncio.gather(*(registry.get("c1") for _ in range(50)))
            assert {c.client_name for c in got if c} == {"one"} and storage.reads == 1

            clock.t += 6  # expired: 50 requests at once still cost one read
            await asyncio.gather(*(registry.get("c1") for _ in range(50)))
            assert storage.reads == 2

            clock.t += 6
            stale_read = asyncio.ensure_future(registry.get("c1"))
            await asyncio.sleep(0)  # the read has started and holds the old row
            await storage.update_client("c1", {"client_name": "renamed"}, now=2_000)
            registry.invalidate("c1")
            assert (await registry.get("c1")).client_name == "renamed"  # type: ignore[union-attr]
            await stale_read
            assert (await registry.get("c1")).client_name == "renamed"  # type: ignore[union-attr]
        finally:
            await storage.close()

    asyncio.run(scenario())
