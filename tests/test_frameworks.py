"""The framework examples under real HTTP: FastAPI on uvicorn, aiohttp, anyio, and the demo.

Each server runs on a free loopback port inside the test; requests go over real
sockets. Bursts are larger than the pool, and the pool must never grow past
max_size, must end with nothing lent out, and must be closed after shutdown.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from aiopool import PoolStats
from tests.support.realdb import ScratchDatabase, execute

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
STAT_NAMES = {f.name for f in fields(PoolStats)}
MAX_SIZE = 5
BURST = 100


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py (examples/ is not a package)."""
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"aiopool_examples_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    # Examples import each other as they do when run from examples/ (metrics_app -> fastapi_app).
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))
    return module


fastapi_app = load_example("fastapi_app")
aiohttp_app = load_example("aiohttp_app")
metrics_app = load_example("metrics_app")
HISTOGRAMS = (
    "aiopool_connection_wait_seconds",
    "aiopool_connection_use_seconds",
    "aiopool_connection_create_seconds",
)


@asynccontextmanager
async def uvicorn_server(app: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port; yield its base URL."""
    # IPPROTO_TCP so that asyncio sets TCP_NODELAY on accepted connections.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(20):
            while not server.started:
                assert not task.done(), "uvicorn stopped during startup (see its log)"
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task
        sock.close()


async def burst(
    get: Callable[[int], Awaitable[tuple[int, dict[str, Any]]]],
    health: Callable[[], Awaitable[dict[str, Any]]],
) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    """BURST concurrent requests while /health is sampled; return responses and samples."""
    samples: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def sample() -> None:
        for _ in range(2000):  # bounded; stops when the burst is over
            samples.append(await health())
            if done.is_set():
                return
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    try:
        responses = await asyncio.gather(*(get(n) for n in range(BURST)))
    finally:
        done.set()
        await sampler
    return responses, samples


def check_burst(
    responses: list[tuple[int, dict[str, Any]]],
    samples: list[dict[str, Any]],
    after: dict[str, Any],
) -> None:
    assert [status for status, _ in responses] == [200] * BURST
    assert sorted(body["n"] for _, body in responses) == list(range(BURST))
    assert len({body["connection_id"] for _, body in responses}) <= MAX_SIZE
    assert samples, "no /health sample during the burst"
    assert max(s["pool_size"] for s in samples) <= MAX_SIZE
    assert max(s["pool_in_use"] for s in samples) <= MAX_SIZE
    assert after["pool_size"] <= MAX_SIZE
    assert after["pool_in_use"] == 0
    assert after["requests_waiting"] == 0
    assert after["requests_errors"] == 0
    assert after["requests_queued"] > 0, "the burst never made anyone wait: not a test"
    assert after["connections_num"] <= MAX_SIZE


# --- FastAPI -----------------------------------------------------------------


async def tables(url: str) -> list[str]:
    """The tables of the database `url` names."""
    sql = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
    (rows,) = await execute(url, sql)
    return sorted(row[0] for row in rows)


# The FastAPI example creates a table and drops it when it stops: each test gets a
# database of its own, so that runs sharing a server cannot drop each other's table.


async def test_fastapi_request_health_and_transactions(scratch: ScratchDatabase) -> None:
    app = fastapi_app.create_app(scratch.url, min_size=1, max_size=MAX_SIZE)
    async with asyncio.timeout(60):
        async with uvicorn_server(app) as base, httpx.AsyncClient(base_url=base) as http:
            response = await http.get("/items/7")
            assert response.status_code == 200
            assert response.json()["n"] == 7
            assert float(response.headers[fastapi_app.POOL_WAIT_HEADER]) >= 0

            health = (await http.get("/health")).json()
            assert set(health) == STAT_NAMES
            assert health["pool_max"] == MAX_SIZE
            assert health["pool_in_use"] == 0  # returned before the response was sent

            name = f"test-{uuid.uuid4().hex}"
            assert (await http.post(f"/visits/{name}")).json()["hits"] == 1
            assert (await http.post(f"/visits/{name}")).json()["hits"] == 2
            failed = await http.post(f"/visits/{name}", params={"fail": "true"})
            assert failed.status_code == 409  # the endpoint raised: rolled back
            assert (await http.post(f"/visits/{name}")).json()["hits"] == 3
            assert (await http.get("/health")).json()["pool_in_use"] == 0
        assert app.state.pool.closed
    assert await tables(scratch.url) == [], "the example left its table behind"


async def serve_a_burst(app: Any) -> None:
    """BURST requests of 10 ms against an app whose pool holds MAX_SIZE, over real HTTP."""
    limits = httpx.Limits(max_connections=BURST + 1)
    async with asyncio.timeout(60):
        async with (
            uvicorn_server(app) as base,
            httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http,
        ):

            async def get(n: int) -> tuple[int, dict[str, Any]]:
                response = await http.get(f"/items/{n}", params={"ms": 10})
                return response.status_code, response.json()

            async def health() -> dict[str, Any]:
                return dict((await http.get("/health")).json())

            responses, samples = await burst(get, health)
            check_burst(responses, samples, await health())
        assert app.state.pool.closed
        assert app.state.pool.get_stats().pool_size == 0


async def test_fastapi_burst_larger_than_pool(scratch: ScratchDatabase) -> None:
    await serve_a_burst(fastapi_app.create_app(scratch.url, min_size=1, max_size=MAX_SIZE))


# --- FastAPI with /metrics ----------------------------------------------------


def histograms(text: str, pool: str) -> dict[str, dict[str, float]]:
    """name -> {"count", "sum", and each "le"} for one pool, from a text exposition."""
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        values = found.setdefault(family.name, {})
        for sample in family.samples:
            if sample.labels.get("pool") != pool:
                continue
            suffix = sample.name.removeprefix(family.name)
            key = sample.labels["le"] if suffix == "_bucket" else suffix.lstrip("_")
            values[key] = sample.value
    return found


async def test_metrics_app_histograms_count_the_requests(scratch: ScratchDatabase) -> None:
    registry = CollectorRegistry()
    app = metrics_app.create_app(scratch.url, min_size=1, max_size=MAX_SIZE, registry=registry)
    requests = 8
    async with asyncio.timeout(60):
        async with uvicorn_server(app) as base, httpx.AsyncClient(base_url=base) as http:
            responses = await asyncio.gather(
                *(http.get(f"/items/{n}", params={"ms": 20}) for n in range(requests))
            )
            assert [r.status_code for r in responses] == [200] * requests
            response = await http.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            stats = (await http.get("/health")).json()
    text = response.text
    found = histograms(text, "fastapi-example")
    # Every hand-out and return: the requests plus the lifespan's CREATE TABLE check.
    assert found["aiopool_connection_wait_seconds"]["count"] == requests + 1
    assert found["aiopool_connection_use_seconds"]["count"] == requests + 1
    assert found["aiopool_connection_create_seconds"]["count"] == stats["connections_num"] > 0
    # Each read held its connection through SLEEP(0.02): no loan of the requests in (.., 10 ms].
    assert found["aiopool_connection_use_seconds"]["0.01"] <= 1
    for name in HISTOGRAMS:
        assert found[name]["+Inf"] == found[name]["count"]
        assert f'{name}_bucket{{le="0.0001",pool="fastapi-example"}}' in text
    assert 'aiopool_connection_timeouts_total{pool="fastapi-example"} 0.0' in text
    assert f'aiopool_connections_max{{pool="fastapi-example"}} {float(MAX_SIZE)}' in text


async def test_metrics_app_module_level_app_under_uvicorn(scratch: ScratchDatabase) -> None:
    """``uvicorn metrics_app:app``, as its docstring says, over real HTTP."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "uvicorn", "metrics_app:app",
        "--app-dir", str(EXAMPLES), "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "AIOPOOL_URL": scratch.url}
    server = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            async with asyncio.timeout(30):
                while True:
                    assert server.poll() is None, "uvicorn stopped during startup"
                    try:
                        await http.get("/health")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
            for n in range(3):
                assert (await http.get(f"/items/{n}")).status_code == 200
            text = (await http.get("/metrics")).text
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=20)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it.
    assert server.returncode in (0, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr, stderr
    found = histograms(text, "fastapi-example")
    for name in HISTOGRAMS:
        assert found[name]["count"] > 0, name
        assert f"{name}_count" in text
    assert found["aiopool_connection_wait_seconds"]["count"] >= 3


# --- aiohttp -----------------------------------------------------------------


async def test_aiohttp_request_health_and_burst(database_url: str) -> None:
    app = aiohttp_app.create_app(database_url, min_size=1, max_size=MAX_SIZE)
    async with asyncio.timeout(60):
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            response = await client.get("/items/7")
            assert response.status == 200
            assert (await response.json())["n"] == 7

            async def health() -> dict[str, Any]:
                async with client.get("/health") as response:
                    return dict(await response.json())

            first = await health()
            assert set(first) == STAT_NAMES
            assert first["pool_max"] == MAX_SIZE

            async def get(n: int) -> tuple[int, dict[str, Any]]:
                async with client.get(f"/items/{n}") as response:
                    return response.status, await response.json()

            responses, samples = await burst(get, health)
            check_burst(responses, samples, await health())
        pool = app[aiohttp_app.POOL]
        assert pool.closed
        assert pool.get_stats().pool_size == 0


# --- examples run as programs --------------------------------------------------


def run_example(database_url: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIOPOOL_URL": database_url}
    command = [sys.executable, *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT, check=False
    )


def test_anyio_taskgroup_leaves_pool_whole(database_url: str) -> None:
    result = run_example(database_url, "examples/anyio_taskgroup.py", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "task group failed with Boom('one task failed')" in out
    assert "pool_in_use=0 requests_waiting=0" in out
    assert "pool still works: SELECT 1 -> (1,)" in out
    assert out.rstrip().endswith("pool is whole")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="defaults"),
        pytest.param(["--clients", "50", "--requests", "500", "--max-size", "3"], id="small"),
    ],
)
def test_demo_runs_and_reports(scratch_sync: ScratchDatabase, args: list[str]) -> None:
    result = run_example(scratch_sync.url, "examples/demo.py", *args, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [re.fullmatch(r"  (\S.*?)\s{2,}(\S.*)", line) for line in result.stdout.splitlines()]
    lines = {row[1]: row[2] for row in rows if row}
    assert set(lines) == {
        "requests",
        "errors",
        "duration",
        "throughput",
        "latency p50 / p99",
        "pool wait p50 / p99",
        "connections opened",
        "requests queued",
        "server stopped",
    }, result.stdout
    assert lines["errors"].split()[-1] == "0"
    # The pool-wait percentiles come from the histogram: one observation per hand-out,
    # the requests' and the lifespan's CREATE TABLE check.
    handouts = re.search(
        r"aiopool_connection_wait_seconds, ([\d,]+) hand-outs", lines["pool wait p50 / p99"]
    )
    assert handouts is not None, lines["pool wait p50 / p99"]
    requests = int(lines["requests"].split()[0].replace(",", ""))
    assert int(handouts[1].replace(",", "")) == requests + 1 > 1
    assert "exit code 0, pool closed, 0 in use" in lines["server stopped"]
    assert "req/s" in result.stderr, "no progress lines on stderr"
    assert asyncio.run(tables(scratch_sync.url)) == [], "the demo left its table behind"


def test_fastapi_app_runs_under_the_uvicorn_command(scratch_sync: ScratchDatabase) -> None:
    """`cd examples && uvicorn fastapi_app:app`, as the docs say, then a clean stop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {**os.environ, "AIOPOOL_URL": scratch_sync.url}
    command = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--fd", str(sock.fileno())]
    server = subprocess.Popen(
        command,
        cwd=EXAMPLES,
        env=env,
        pass_fds=[sock.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sock.close()
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, "uvicorn exited during startup"
                try:
                    response = http.get("/items/7")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "uvicorn did not start serving"
                    time.sleep(0.1)
            assert response.status_code == 200 and response.json()["n"] == 7
            assert http.post("/visits/cli").json() == {"name": "cli", "hits": 1}
            assert asyncio.run(tables(scratch_sync.url)) == ["aiopool_example_visits"]
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: uvicorn runs the lifespan shutdown
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert "Application shutdown complete" in output
    assert asyncio.run(tables(scratch_sync.url)) == [], "the app left its table behind"
