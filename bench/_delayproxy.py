"""A TCP proxy that makes every new connection slow to open; runs as its own process.

W6 needs connections that take ``delay`` seconds to open, counted where they
arrive.  The proxy accepts a client at once, counts it, waits ``delay``, then
connects upstream and forwards bytes both ways untouched.  A MySQL client sees
the server's greeting ``delay`` late; a PostgreSQL client's start-up message
waits in the socket until then.  Either way the connect takes ``delay`` longer,
as with a distant server or a slow TLS handshake.

It runs in a child process (``python path/to/_delayproxy.py HOST PORT DELAY``)
so that its own CPU time is not charged to the pool being measured: on the
same event loop every forwarded packet would compete with the pool's hand-offs.
Forwarding is protocol-based (no per-chunk task or queue), with flow control.
Standard library only (uvloop if installed), so it runs from its file path.

Control, one line each way: the child prints ``listening PORT`` once ready;
``count`` on stdin answers ``ACCEPTED ACTIVE`` (connections accepted since the
start, connections open now); end of stdin (or ``quit``) stops it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, cast


class _Upstream(asyncio.Protocol):
    """The proxy's connection to the server: everything read goes to the client."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.client.transport is not None:
            self.client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()

    # The client reads slower than the server writes: stop reading the server.
    def pause_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.resume_reading()


class _Client(asyncio.Protocol):
    """One accepted client; its upstream side opens ``delay`` seconds after the accept."""

    def __init__(self, proxy: _Proxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.early: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.proxy.accepted += 1
        self.proxy.active.add(self)
        # Bytes the client sends first (PostgreSQL) wait in the kernel meanwhile;
        # uvloop may still deliver some (it starts reading after this call), so
        # ``data_received`` keeps those until the upstream side is there.
        self.transport.pause_reading()
        loop = asyncio.get_running_loop()
        loop.call_later(self.proxy.delay, lambda: self.proxy.spawn(self._connect()))

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, up = await loop.create_connection(
                lambda: _Upstream(self), self.proxy.host, self.proxy.port
            )
        except OSError:
            self.close()
            return
        if self.closed or self.transport is None:
            if up.transport is not None:
                up.transport.close()
            return
        self.upstream = up
        if up.transport is not None:
            for data in self.early:
                up.transport.write(data)
        self.early.clear()
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(data)
        else:
            self.early.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy.active.discard(self)
        # MySQL and PostgreSQL have no half-closed sessions: end both sides.
        if self.transport is not None:
            self.transport.close()
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()


class _Proxy:
    def __init__(self, host: str, port: int, delay: float) -> None:
        self.host = host
        self.port = port
        self.delay = delay
        self.accepted = 0
        self.active: set[_Client] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Client(self), "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print(f"listening {port}", flush=True)
        while True:
            line = (await reader.readline()).decode().strip()
            if line == "count":
                print(f"{self.accepted} {len(self.active)}", flush=True)
            elif line in ("quit", ""):
                break
        server.close()
        for client in list(self.active):
            client.close()


def main(argv: list[str]) -> None:
    host, port, delay = argv[0], int(argv[1]), float(argv[2])
    try:
        import uvloop
    except ImportError:
        factory = asyncio.new_event_loop
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_Proxy(host, port, delay).serve())


if __name__ == "__main__":
    main(sys.argv[1:])
