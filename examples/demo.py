"""`make demo`: the FastAPI example under a burst of concurrent HTTP clients.

Starts the FastAPI example with /metrics (examples/metrics_app.py) under
uvicorn on a free loopback port, in a child process (so the server and the
load generator do not share a core), sends a bounded burst of requests (4,000,
or 15 s) from many more concurrent httpx clients than the pool has
connections, shows live progress on stderr, then prints a summary: throughput,
latency, how long requests waited for a connection and what the pool did. The
pool-wait percentiles come from the aiopool_connection_wait_seconds histogram
that the pool's Prometheus listener filled (one observation per hand-out, the
pool's AcquireEvent.wait_s), read from /metrics and interpolated the way
PromQL's histogram_quantile() does. The server stops when the demo closes its
stdin, so it never outlives the demo. Exits 1 if any request failed, the pool
ever grew past max_size, or the server did not stop cleanly with its pool
closed.

    AIOPOOL_URL=mysql://root:@127.0.0.1:3306/test python examples/demo.py [--clients 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi_app import POOL_NAME
from metrics_app import create_app
from prometheus_client.parser import text_string_to_metric_families

HOST = "127.0.0.1"
WRITE_EVERY = 10  # one request in ten is a write in a transaction
VISIT_ROWS = 20  # writes spread over this many rows
SSL = ssl.create_default_context()  # unused on http://, but httpx builds one per client
WAIT_HISTOGRAM = "aiopool_connection_wait_seconds"


@dataclass
class Results:
    """What the clients measured."""

    latency_ms: list[float] = field(default_factory=list)
    reads: int = 0
    writes: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    peaks: Counter[str] = field(default_factory=Counter)  # highest pool gauges seen

    @property
    def done(self) -> int:
        return self.reads + self.writes + self.errors.total()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Histogram:
    """One pool's cumulative buckets, as scraped: (upper bound, observations <= bound)."""

    buckets: list[tuple[float, float]]

    @property
    def count(self) -> int:
        return int(self.buckets[-1][1]) if self.buckets else 0

    def quantile(self, q: float) -> float:
        """Like PromQL's histogram_quantile(): linear inside the bucket the rank falls in."""
        if not self.count:
            return math.nan
        rank = q * self.count
        lower, below = 0.0, 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(bound):  # above every bound: the highest finite one
                    return lower
                return lower + (bound - lower) * (rank - below) / (cumulative - below)
            lower, below = bound, cumulative
        return lower


def parse_histogram(text: str, name: str, pool: str) -> Histogram:
    """The histogram ``name`` of ``pool`` from a Prometheus text exposition."""
    buckets = [
        (float(sample.labels["le"]), sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == name
        for sample in family.samples
        if sample.name == f"{name}_bucket" and sample.labels.get("pool") == pool
    ]
    return Histogram(sorted(buckets))


# --- the server (child process) -------------------------------------------------


def serve(max_size: int) -> int:
    """Run the app on a free port; print the port once it serves, and the final stats.

    The server stops when stdin closes, so it never outlives the demo.
    """
    app = create_app(min_size=min(2, max_size), max_size=max_size)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are
    # TCP, and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((HOST, 0))

    def stop_at_eof() -> None:
        sys.stdin.buffer.read()
        server.should_exit = True

    async def run_server() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():  # lifespan opens the pool first
            await asyncio.sleep(0.01)
        if server.started:
            print(sock.getsockname()[1], flush=True)
        await task

    threading.Thread(target=stop_at_eof, daemon=True).start()
    # Ctrl-C reaches both processes: uvicorn shuts down gracefully, then re-raises it.
    with sock, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_server())
    pool = getattr(app.state, "pool", None)
    if pool is None or not server.started:
        return 1
    print(json.dumps({"closed": pool.closed, **pool.get_stats()}), flush=True)
    return 0


@contextlib.asynccontextmanager
async def server_process(max_size: int, final: dict[str, Any]) -> AsyncIterator[str]:
    """Start the server child, yield its base URL; stop it and fill `final` on exit."""
    command = [sys.executable, __file__, "--serve", "--max-size", str(max_size)]
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(*command, stdin=pipe, stdout=pipe)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        async with asyncio.timeout(20):
            line = await proc.stdout.readline()
        if not line.strip():
            raise RuntimeError(f"the server did not start (exit code {await proc.wait()})")
        yield f"http://{HOST}:{int(line)}"
    finally:
        proc.stdin.close()  # the child's signal to shut down
        try:
            async with asyncio.timeout(10):
                out = await proc.stdout.read()
                final["exit_code"] = await proc.wait()
        except TimeoutError:
            proc.kill()
            final["exit_code"] = await proc.wait()
        else:
            with contextlib.suppress(ValueError):  # no stats line: reported as not closed
                final.update(json.loads(out.decode().strip().rpartition("\n")[2]))


# --- the load generator ----------------------------------------------------------


async def one_request(http: httpx.AsyncClient, n: int, query_ms: int, results: Results) -> None:
    write = n % WRITE_EVERY == WRITE_EVERY - 1
    started = time.perf_counter()
    try:
        if write:
            response = await http.post(f"/visits/demo-{n % VISIT_ROWS}")
        else:
            response = await http.get(f"/items/{n}", params={"ms": query_ms})
    except httpx.HTTPError as exc:
        results.errors[type(exc).__name__] += 1
        return
    if response.status_code != 200:
        results.errors[f"HTTP {response.status_code}"] += 1
        return
    results.latency_ms.append((time.perf_counter() - started) * 1000)
    if write:
        results.writes += 1
    else:
        results.reads += 1


async def client(
    base: str, numbers: Iterator[int], deadline: float, args: argparse.Namespace, results: Results
) -> None:
    """One client with its own HTTP connection: requests one after another until done."""
    # One httpx client per simulated client: httpcore's pool does work proportional to
    # (requests in flight x connections) per request, so one client shared by 200 tasks
    # spends most of its time there. Sharing the SSL context keeps creating them cheap.
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10, verify=SSL) as http:
        for n in numbers:
            if n >= args.requests or time.monotonic() >= deadline:
                return
            await one_request(http, n, args.query_ms, results)


async def watch(base: str, results: Results, stop: asyncio.Event, started: float) -> None:
    """Live progress on stderr: refreshed in place on a terminal, a line a second otherwise."""
    tty = sys.stderr.isatty()
    interval = 0.25 if tty else 1.0
    last_done, last_time = 0, started
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            try:
                stats = (await http.get("/health")).json()
            except (httpx.HTTPError, ValueError):
                stats = {}
            for key in ("pool_size", "pool_in_use", "requests_waiting"):
                results.peaks[key] = max(results.peaks[key], int(stats.get(key, 0)))
            now, done = time.monotonic(), results.done
            rate = (done - last_done) / max(now - last_time, 1e-9)
            last_done, last_time = done, now
            line = (
                f"{now - started:5.1f}s  {done:5d} requests  {rate:6.0f} req/s"
                f"  errors {results.errors.total()}"
                f"  pool in use {stats.get('pool_in_use', '?')}/{stats.get('pool_max', '?')}"
                f"  waiting {stats.get('requests_waiting', '?')}"
            )
            sys.stderr.write(f"\r{line}\x1b[K" if tty else f"{line}\n")
            sys.stderr.flush()
    if tty:
        sys.stderr.write("\n")


async def load(base: str, args: argparse.Namespace, results: Results) -> float:
    """Run the burst; return its duration in seconds."""
    started = time.monotonic()
    deadline = started + args.duration
    numbers = itertools.count()
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(base, results, stop, started))
    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(args.clients):
                tg.create_task(client(base, numbers, deadline, args, results))
        return time.monotonic() - started
    finally:
        stop.set()
        await watcher


# --- the report ----------------------------------------------------------------


def summary(
    args: argparse.Namespace,
    results: Results,
    elapsed: float,
    stats: dict[str, Any],
    wait: Histogram,
    final: dict[str, Any],
) -> str:
    lat, peaks = results.latency_ms, results.peaks
    errors = ", ".join(f"{count} {kind}" for kind, count in results.errors.most_common(3))
    limit = "  (time limit)" if results.done < args.requests else ""
    closed = "pool closed" if final.get("closed") else "POOL NOT CLOSED"
    rows = {
        "requests": f"{results.done:,}  ({results.reads:,} reads,"
        f" {results.writes:,} writes in a transaction)",
        "errors": f"{results.errors.total()}" + (f"  ({errors})" if errors else ""),
        "duration": f"{elapsed:.2f} s{limit}",
        "throughput": f"{results.done / elapsed:,.0f} req/s",
        "latency p50 / p99": f"{percentile(lat, 50):.1f} / {percentile(lat, 99):.1f} ms",
        "pool wait p50 / p99": f"{wait.quantile(0.5) * 1000:.1f} / {wait.quantile(0.99) * 1000:.1f}"
        f" ms  (histogram {WAIT_HISTOGRAM}, {wait.count:,} hand-outs)",
        "connections opened": f"{stats.get('connections_num', '?')}"
        f"  (peak size {peaks['pool_size']}, in use {peaks['pool_in_use']},"
        f" waiting {peaks['requests_waiting']})",
        "requests queued": f"{stats.get('requests_queued', '?')} of"
        f" {stats.get('requests_num', '?')} waited for a connection",
        "server stopped": f"exit code {final.get('exit_code')}, {closed},"
        f" {final.get('pool_in_use', '?')} in use",
    }
    title = (
        f"aiopool demo: FastAPI + uvicorn, {args.clients} concurrent HTTP clients,"
        f" one pool of max_size {args.max_size}, reads hold a connection {args.query_ms} ms"
    )
    return "\n".join([title, *(f"  {name:<20} {value}" for name, value in rows.items())])


async def run(args: argparse.Namespace) -> int:
    results, final = Results(), dict[str, Any]()
    try:
        async with server_process(args.max_size, final) as base:
            elapsed = await load(base, args, results)
            async with httpx.AsyncClient(base_url=base, timeout=5) as http:
                stats = (await http.get("/health")).json()
                metrics = (await http.get("/metrics")).text
    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        print(f"demo failed: {exc!r}", file=sys.stderr)
        return 1
    wait = parse_histogram(metrics, WAIT_HISTOGRAM, POOL_NAME)
    print(summary(args, results, elapsed, stats, wait, final))
    clean = final.get("exit_code") == 0 and final.get("closed") and final.get("pool_in_use") == 0
    too_big = max(results.peaks["pool_size"], stats["pool_size"]) > args.max_size
    return 0 if results.done and not results.errors and clean and not too_big else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=200, help="concurrent HTTP clients")
    parser.add_argument("--requests", type=int, default=4000, help="requests in all")
    parser.add_argument("--duration", type=float, default=15.0, help="time limit, seconds")
    parser.add_argument("--max-size", type=int, default=10, help="the pool's max_size")
    parser.add_argument("--query-ms", type=int, default=20, help="server time of each read")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.max_size)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
