"""Group work from concurrent requests into one database round trip.

Each caller awaits its own result, which is set only after the shared statement (and, for
writes, its commit) finished: batching changes the cost, never the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Batcher"]

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    """While one batch runs, new arrivals queue up and go together in the next one."""

    def __init__(self, run_batch: Callable[[list[In]], Awaitable[list[Out]]], max_batch: int = 512) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def drain(self) -> None:
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    results = await self._run_batch([item for item, _ in batch])
                except BaseException as exc:  # every waiting request gets the error; none is left hanging
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # a request that was cancelled (client went away) is skipped
                        future.set_result(result)
        finally:
            self._worker = None
