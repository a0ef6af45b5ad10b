"""The workloads and the measuring loops.

Single-task workloads (W1, W2) are measured with every contender open at once,
taking turns in short slices (see ``run_sliced``): on two shared, noisy cores
this is what makes a 3 % difference visible at all.

A multi-task run starts its tasks once and keeps them going through a warm-up phase and
then the measured window, so the window sees a steady state rather than the
herd of tasks starting together. Within the window:

* throughput counts operations that *finished* inside it;
* latency is acquire-to-release of those operations;
* an acquire wait is the time from asking for a connection to holding it; the
  longest one is taken over every operation whose acquire completed inside the
  window or in the tail after it (tasks stop starting operations at the end
  and the operations already queued are drained, so a starved waiter is seen);
* that wait is also counted in queue turns: the loans granted to other tasks
  while the waiter waited, divided by the tasks that can be ahead of it
  (``tasks - size``).  A loan is counted when its task resumes, so loans
  handed over just before the waiter queued (up to ``size``) may be counted
  too: a first-come-first-served pool stays at or under
  ``(tasks - 1) / (tasks - size)`` (1.31 in W3, 1.02 in W4) whatever the
  clock says, where a pause of the whole machine, when nothing completes for
  some milliseconds, lengthens every wait it spans in time (fair cycles);
* fairness is the fewest operations any task finished in the window divided by
  the median task's count.
"""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ._adapters import Adapter
from ._order import turn_order

MAX_OPS = 20_000_000  # count bound per run, on top of the time bound
RAW_BATCH = 100  # W1: pairs per timed batch; the first pair of each batch is timed alone


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    tasks: int
    op: str  # "raw", "select1", "sleep2ms" or "burst"


WORKLOADS: dict[str, Workload] = {
    w.key: w
    for w in (
        Workload("W1", "acquire+release, no query, 1 task", 1, "raw"),
        Workload("W2", "SELECT 1, 1 task", 1, "select1"),
        Workload("W3", "SELECT 1, 64 tasks", 64, "select1"),
        Workload("W4", "SELECT 1, 1000 tasks", 1000, "select1"),
        Workload("W5", "SELECT SLEEP(0.002), 200 tasks", 200, "sleep2ms"),
        # Runs through bench/_burst.py, not the loops below.
        Workload("W6", "burst: 200 loans of 2 ms, pools 4..16, 100 ms connects", 200, "burst"),
    )
}


@dataclass
class RunResult:
    ops: int  # finished inside the window
    ops_total: int  # including warm-up and tail, for per-operation server counters
    seconds: float
    ops_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    wait_p99_ms: float | None
    wait_max_ms: float | None
    fair_cycles: float | None  # wait_max / ((tasks - size) / ops_per_s)
    queue_turns: float | None  # most loans to others during one wait / (tasks - size)
    fairness: float | None  # min task ops / median task ops
    latency_sampled: bool = False
    timed_out: bool = False
    server: dict[str, Any] = field(default_factory=dict)


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx] * 1e3


class _Meter:
    """One contender's share of a single-task run, measured slice by slice."""

    def __init__(self, adapter: Adapter, op: str) -> None:
        self.adapter = adapter
        self.op = op
        self.ops = 0
        self.total = 0
        self.elapsed = 0.0
        self.latencies: list[float] = []
        self.waits: list[float] = []
        self.server: dict[str, int] = {}
        self.slices = 0

    async def run(self, seconds: float, record: bool = True) -> None:
        # An adapter may take something for the slice (outside the timing).
        start = getattr(self.adapter, "slice_start", None)
        if start is not None:
            await start()
        try:
            if self.op == "raw":
                await self._raw(seconds, record)
            else:
                await self._ops(seconds, record)
        finally:
            if start is not None:
                await self.adapter.slice_end()  # type: ignore[attr-defined]

    async def _raw(self, seconds: float, record: bool) -> None:
        # Pairs run in batches; the first pair of each batch is timed alone.
        clock = time.perf_counter
        batch = self.adapter.raw_batch
        t = start = clock()
        end = start + seconds
        ops = 0
        lat = self.latencies
        while t < end:
            t0 = clock()
            await batch(1)
            t1 = clock()
            await batch(RAW_BATCH - 1)
            t = clock()
            ops += RAW_BATCH
            if record:
                lat.append(t1 - t0)
        self._add(ops, t - start, record)

    async def _ops(self, seconds: float, record: bool) -> None:
        clock = time.perf_counter
        acquire = self.adapter.acquire
        run = self.adapter.ops[self.op]
        held = self.adapter.held()
        t = start = clock()
        end = start + seconds
        ops = 0
        lat = self.latencies
        waits = self.waits
        while t < end:
            t0 = clock()
            if held is None:
                async with acquire() as conn:
                    t1 = clock()
                    await run(conn)
            else:
                t1 = t0
                await run(held)
            t = clock()
            ops += 1
            if record:
                lat.append(t - t0)
                waits.append(t1 - t0)
        self._add(ops, t - start, record)

    def _add(self, ops: int, elapsed: float, record: bool) -> None:
        self.total += ops
        if record:
            self.ops += ops
            self.elapsed += elapsed
            self.slices += 1

    def result(self) -> RunResult:
        lat = sorted(self.latencies)
        waits = sorted(self.waits)
        sampled = self.op == "raw"
        return RunResult(
            ops=self.ops,
            ops_total=self.ops,
            seconds=self.elapsed,
            ops_per_s=self.ops / self.elapsed if self.elapsed else 0.0,
            p50_ms=_pct(lat, 0.50),
            p99_ms=_pct(lat, 0.99),
            wait_p99_ms=None if sampled else _pct(waits, 0.99),
            wait_max_ms=None if sampled or not waits else waits[-1] * 1e3,
            fair_cycles=None,
            queue_turns=None,
            fairness=None,
            latency_sampled=sampled,
        )


Counters = Callable[[], Awaitable[dict[str, int]]]


async def run_sliced(
    adapters: dict[str, Adapter],
    workload: Workload,
    warmup: float,
    seconds: float,
    slice_s: float,
    counters: Counters | None,
    mysql: set[str],
) -> dict[str, RunResult]:
    """Single-task workloads: every contender is open at once and they take turns in
    short slices (the order changes every cycle, ``turn_order``), so a burst of load
    from elsewhere on the machine lands on all of them alike. Server counters are read
    around each slice of a MySQL contender and summed (the reads themselves are outside
    the timing)."""
    meters = {name: _Meter(a, workload.op) for name, a in adapters.items()}
    names = list(meters)
    gc.collect()
    for i in range(max(1, math.ceil(warmup / slice_s))):
        for name in turn_order(names, i):
            await meters[name].run(slice_s, record=False)
    for i in range(max(1, math.ceil(seconds / slice_s))):
        for name in turn_order(names, i):
            meter = meters[name]
            use = counters is not None and name in mysql
            before = await counters() if use else None
            await meter.run(slice_s)
            if use:
                after = await counters()
                for k, v in after.items():
                    meter.server[k] = meter.server.get(k, 0) + v - before[k]
    out = {}
    for name, meter in meters.items():
        res = meter.result()
        res.server = dict(meter.server)
        res.server["_reads"] = meter.slices if meter.server else 0
        out[name] = res
    return out


@dataclass
class _TaskRecord:
    counted: int = 0
    total: int = 0
    latencies: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    wait_max: float = 0.0
    loans_passed_max: int = 0  # most loans granted to other tasks during one wait


async def _worker(
    adapter: Adapter,
    op: str,
    window_start: float,
    end: float,
    max_ops: int,
    rec: _TaskRecord,
    loans: list[int],
) -> None:
    # ``loans[0]``: loans granted so far, shared by every task of the run.
    clock = time.perf_counter
    acquire = adapter.acquire
    run = adapter.ops[op]
    held = adapter.held()
    lat = rec.latencies
    waits = rec.waits
    while rec.total < max_ops:
        t0 = clock()
        if t0 >= end:
            return
        before = loans[0]
        if held is None:
            async with acquire() as conn:
                t1 = clock()
                granted = loans[0]
                loans[0] = granted + 1
                await run(conn)
        else:
            t1 = t0
            granted = loans[0]
            loans[0] = granted + 1
            await run(held)
        t2 = clock()
        rec.total += 1
        if t1 >= window_start:
            wait = t1 - t0
            if wait > rec.wait_max:
                rec.wait_max = wait
            if granted - before > rec.loans_passed_max:
                rec.loans_passed_max = granted - before
            if t2 < end:
                rec.counted += 1
                lat.append(t2 - t0)
                waits.append(wait)
        elif window_start <= t2 < end:
            rec.counted += 1
            lat.append(t2 - t0)
            waits.append(t1 - t0)


async def run_tasks(
    adapter: Adapter, workload: Workload, warmup: float, seconds: float
) -> RunResult:
    """W2..W5: ``workload.tasks`` tasks loop borrow, statement, give back."""
    gc.collect()
    n_tasks = adapter.tasks_for.get(workload.key, workload.tasks)
    records = [_TaskRecord() for _ in range(n_tasks)]
    window_start = time.perf_counter() + warmup
    end = window_start + seconds
    per_task_cap = max(1, MAX_OPS // n_tasks)
    loans = [0]
    tasks = [
        asyncio.create_task(
            _worker(adapter, workload.op, window_start, end, per_task_cap, r, loans)
        )
        for r in records
    ]
    timed_out = False
    done, pending = await asyncio.wait(tasks, timeout=warmup + seconds + max(30.0, 10 * seconds))
    if pending:
        timed_out = True
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    for t in done:
        if t.exception() is not None:
            raise t.exception()  # type: ignore[misc]
    return _summarise(records, adapter.size, seconds, timed_out)


def _summarise(records: list[_TaskRecord], size: int, seconds: float, timed_out: bool) -> RunResult:
    lat = sorted(x for r in records for x in r.latencies)
    waits = sorted(x for r in records for x in r.waits)
    ops = sum(r.counted for r in records)
    rate = ops / seconds
    wait_max = max(r.wait_max for r in records)
    waiting = len(records) - size
    cycles = wait_max / (waiting / rate) if waiting > 0 and rate > 0 else None
    turns = max(r.loans_passed_max for r in records) / waiting if waiting > 0 else None
    fairness = None
    if len(records) > 1:
        counts = [r.counted for r in records]
        median = statistics.median(counts)
        fairness = min(counts) / median if median else 0.0
    return RunResult(
        ops=ops,
        ops_total=sum(r.total for r in records),
        seconds=seconds,
        ops_per_s=rate,
        p50_ms=_pct(lat, 0.50),
        p99_ms=_pct(lat, 0.99),
        wait_p99_ms=_pct(waits, 0.99),
        wait_max_ms=wait_max * 1e3,
        fair_cycles=cycles,
        queue_turns=turns,
        fairness=fairness,
        timed_out=timed_out,
    )
