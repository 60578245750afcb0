"""Adaptive batching: concurrent requests to one model are merged into one scoring call of at
most ``max_batch_size`` rows, waiting at most ``max_batch_delay_ms`` for more to arrive; scoring
runs in a worker thread, never on the event loop. At most ``max_queue`` requests per model wait
or score at once; more are refused with :class:`OverloadedError` (503 + ``Retry-After``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np

from onnxpipe import Schema
from onnxpipe.serving._models import ServedModel
from onnxpipe.serving._protocol import ProtocolError, split_rows

__all__ = ["INLINE_BELOW_S", "Batcher", "OverloadedError"]

INLINE_BELOW_S = 0.0005  # a scoring call this short blocks the event loop less than a thread hop costs


class OverloadedError(ProtocolError):
    """A model's queue is full: answered with 503 and ``Retry-After``."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message, 503)
        self.retry_after_s = retry_after_s


@dataclasses.dataclass
class _Item:
    schema: Schema
    columns: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future[dict[str, np.ndarray]]


class Batcher:
    """One model's queue of requests and the task that scores them in merged batches."""

    def __init__(
        self,
        model: ServedModel,
        max_batch_size: int,
        max_batch_delay_ms: float,
        max_queue: int | None = None,
        on_batch: Callable[[int], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self.model = model
        # a model with a fixed batch of 1 is never merged: each request is scored on its own
        self.max_batch_size = (
            max_batch_size if model.max_batch_size is None else min(max_batch_size, model.max_batch_size)
        )
        self.max_batch_delay = max_batch_delay_ms / 1000.0
        self.max_queue = max_queue  # None: unbounded
        self.pending = 0  # requests waiting for or in scoring
        self._on_batch = on_batch
        self._on_depth = on_depth
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task[None] | None = None
        self._carry: _Item | None = None
        self._seconds_per_row = math.inf  # the first call runs in a thread (its time is unknown)
        self.scoring_calls = 0  # merged batches scored (for tests and, later, metrics)

    async def score(self, schema: Schema, columns: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        if self.max_queue is not None and self.pending >= self.max_queue:
            raise OverloadedError(f"model {self.model.name!r} has {self.pending} requests queued (its limit)")
        self.pending += 1
        self._depth()
        try:
            return await self._score(schema, columns, rows)
        finally:
            self.pending -= 1
            self._depth()

    def _depth(self) -> None:
        if self._on_depth is not None:
            self._on_depth(self.pending)

    def _scoring(self, rows: int) -> None:
        self.scoring_calls += 1
        if self._on_batch is not None:
            self._on_batch(rows)

    async def _run_model(self, schema: Schema, columns: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        self._scoring(rows)
        start = time.perf_counter()
        try:
            if self._seconds_per_row * rows < INLINE_BELOW_S:
                return self.model.score(schema, columns, rows)
            return await asyncio.to_thread(self.model.score, schema, columns, rows)
        finally:
            self._seconds_per_row = (time.perf_counter() - start) / rows

    async def _score(self, schema: Schema, columns: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        if self.max_batch_size <= 1 or rows >= self.max_batch_size:
            return await self._run_model(schema, columns, rows)
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[dict[str, np.ndarray]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(schema, columns, rows, future))
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _next_batch(self) -> list[_Item]:
        assert self._queue is not None
        first = self._carry if self._carry is not None else await self._queue.get()
        self._carry = None
        batch, rows = [first], first.rows
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_batch_delay
        while rows < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
            if rows + item.rows > self.max_batch_size:
                self._carry = item
                break
            batch.append(item)
            rows += item.rows
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            groups: dict[Schema, list[_Item]] = {}
            for item in batch:
                if not item.future.done():  # a client that went away is not scored
                    groups.setdefault(item.schema, []).append(item)
            for items in groups.values():
                await self._score_group(items)

    async def _score_group(self, items: list[_Item]) -> None:
        names = list(items[0].columns)
        merged = (
            items[0].columns if len(items) == 1 else {n: np.concatenate([i.columns[n] for i in items]) for n in names}
        )
        try:
            results = await self._run_model(items[0].schema, merged, sum(i.rows for i in items))
        except Exception as exc:
            if len(items) > 1:  # one request's rows failed the batch: score each alone, so only it fails
                for i in items:
                    await self._score_group([i])
                return
            for i in items:
                if not i.future.done():
                    i.future.set_exception(exc)
            return
        for item, part in zip(items, split_rows(results, [i.rows for i in items]), strict=True):
            if not item.future.done():
                item.future.set_result(part)
