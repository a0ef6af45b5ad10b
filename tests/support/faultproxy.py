"""A fault-injecting TCP proxy for integration tests.

`FaultProxy` sits between the code under test and a real MySQL/MariaDB server
and forwards bytes both ways.  Tests flip it into a fault mode to see how the
pool behaves when the network misbehaves, without touching the shared server:

* `reset_all()` aborts every live connection with a TCP RST to the client;
* `blackhole()` keeps sockets open but stops forwarding (a silent partition);
* `refuse_new()` refuses new connections (ECONNREFUSED), or resets them;
* `set_latency()` delays every forwarded chunk, order preserved;
* `heal()` switches all of the above off.

Every switch is a plain synchronous method, so a test can flip it between two
awaits and the next client operation already sees the fault.  That is why the
listening socket is driven with `loop.add_reader()` instead of an
`asyncio.Server`: closing and re-opening it must not need an await.

Everything is bounded: a connection pair owns at most five tasks, each
direction holds at most `_QUEUE_CHUNKS` chunks of `_CHUNK_SIZE` bytes, a
blackholed proxy stops *reading* (the kernel's socket buffers then push back
on the peers), and `stop()` cancels and awaits every task it created.  Only
public event-loop APIs are used, so it runs on asyncio and uvloop alike.
Modelled on asyncpg's ``TCPFuzzingProxy`` and psycopg's test ``proxy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Coroutine
from typing import Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

__all__ = ["FaultProxy"]

# One read's worth; also the unit the latency delay line works in.
_CHUNK_SIZE = 64 * 1024
# Chunks held per direction by the delay line before reading stops.
_QUEUE_CHUNKS = 16
# Listen backlog, and the most connections taken per readiness callback.
_BACKLOG = 128
# SO_LINGER on with a zero timeout: close() sends RST instead of FIN.
_LINGER_RST = struct.pack("ii", 1, 0)

# A forwarded chunk: (loop time at which it may be written, payload).
# `None` in the queue marks end of stream from the reading side.
_Chunk = tuple[float, bytes]
_Queue = asyncio.Queue[_Chunk | None]
# How a link is closed: flush then FIN, drop buffered data, or RST the client.
_CloseMode = Literal["graceful", "abort", "reset"]
# How refuse_new() turns clients away; see its docstring.
RefuseMode = Literal["refuse", "reset"]


def _set_rst_on_close(sock: Any) -> None:
    """Make the next close of `sock` send RST rather than FIN.

    `sock` is a `socket.socket` or the wrapper a transport hands out
    (asyncio's ``TransportSocket``, uvloop's ``PseudoSocket``); all three
    support ``setsockopt``.
    """
    if sock is None:
        return
    # The socket may already be gone (peer closed first); a FIN is fine then.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)


def _bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` that may share the port with siblings.

    SO_REUSEPORT lets the proxy keep a non-listening "reservation" socket on
    the port while it refuses connections, and re-listen on it afterwards.
    """
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Link:
    """One proxied client connection and, once connected, its upstream side."""

    def __init__(self, sock: socket.socket) -> None:
        """Hold the accepted socket; streams on both sides come later."""
        self.sock = sock
        self.client_reader: asyncio.StreamReader | None = None
        self.client: asyncio.StreamWriter | None = None
        self.server: asyncio.StreamWriter | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self._mode: _CloseMode = "abort"

    def close(self, *, mode: _CloseMode) -> None:
        """Close both sides and cancel the link's other tasks; idempotent.

        Before the client socket is wrapped in a transport the close is only
        recorded: the event loop may be registering the socket at that
        moment, so `attach_client()` applies it instead.
        """
        if self.closed:
            return
        self.closed = True
        self._mode = mode
        if self.client is None:
            # Leave the handing-over task alone: cancelling it would close
            # the socket with FIN, and a requested RST would be lost.
            return
        self._shut(mode)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()

    def attach_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Adopt the client streams, applying a close that came in meanwhile."""
        self.client_reader, self.client = reader, writer
        if self.closed:
            self._shut(self._mode)

    def _shut(self, mode: _CloseMode) -> None:
        for writer in (self.client, self.server):
            if writer is None:
                continue
            if mode == "graceful":
                writer.close()
                continue
            if mode == "reset" and writer is self.client:
                _set_rst_on_close(writer.get_extra_info("socket"))
            writer.transport.abort()


class FaultProxy:
    """An asyncio TCP proxy to `target_host:target_port` with injectable faults.

    Use as ``async with FaultProxy("127.0.0.1", 3306) as proxy:`` and point the
    client at `proxy.host`/`proxy.port` (or `proxy.url_for(url)`).  Call every
    method from the event loop's thread.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        """Record the addresses; nothing loop-bound is created until `start()`."""
        self.target_host = target_host
        self.target_port = target_port
        self._listen_host = listen_host
        self._listen_port = listen_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: socket.socket | None = None
        # Bound but never listening: holds the port while refusing.
        self._reservation: socket.socket | None = None
        self._bound: tuple[str, int] | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Set while forwarding is allowed; cleared by blackhole().
        self._flowing: asyncio.Event | None = None
        self._refusing: RefuseMode | None = None
        self._latency = 0.0
        self._total = 0
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Bind the listening socket and start accepting connections."""
        if self._loop is not None:
            raise RuntimeError("FaultProxy.start() called twice")
        self._loop = asyncio.get_running_loop()
        self._flowing = asyncio.Event()
        self._flowing.set()
        listener = _bound_socket(self._listen_host, self._listen_port)
        host, port = listener.getsockname()[:2]
        self._bound = (host, port)
        try:
            self._reservation = _bound_socket(host, port)
            self._listen(listener)
        except BaseException:
            listener.close()
            raise

    async def stop(self) -> None:
        """Close the listener and every live connection, await every task.

        Idempotent.  Connections are aborted (not flushed): a blackholed peer
        may never read, and stop() has to finish.
        """
        self._stopping = True
        self._unlisten()
        if self._reservation is not None:
            self._reservation.close()
            self._reservation = None
        for link in list(self._links):
            link.close(mode="abort")
        self._links.clear()
        # Cancelling also covers tasks whose link was already dropped.
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        """Start the proxy."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the proxy, closing every connection."""
        await self.stop()

    # -- addresses -----------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the proxy listens on."""
        return self._require_bound()[0]

    @property
    def port(self) -> int:
        """The port the proxy listens on (chosen by the OS when 0 was asked)."""
        return self._require_bound()[1]

    def url_for(self, url: str) -> str:
        """Return `url` (``mysql://user:pw@host:port/db?...``) aimed at the proxy."""
        parts = urlsplit(url)
        userinfo, _, _ = parts.netloc.rpartition("@")
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = f"{userinfo}@{host}:{self.port}" if userinfo else f"{host}:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def _require_bound(self) -> tuple[str, int]:
        if self._bound is None:
            raise RuntimeError("FaultProxy is not started")
        return self._bound

    # -- fault switches ------------------------------------------------------

    def reset_all(self) -> int:
        """Abort every live connection pair, RST to the client; return how many.

        The upstream side is aborted too, so the server sees the session end.
        """
        links = list(self._links)
        for link in links:
            link.close(mode="reset")
        self._links.clear()
        return len(links)

    def blackhole(self, on: bool = True) -> None:
        """Stop (or resume) forwarding in both directions, for all connections.

        Sockets stay open and new connections are still accepted, but no byte
        moves: the proxy stops reading, so nothing piles up in it, and data a
        task had already read is held (at most one queue per direction).  New
        connections do not even reach the server until forwarding resumes.
        Turning it off delivers the held data, so a connection whose client is
        still waiting carries on where it stopped.  A peer that hangs up while
        blackholed is noticed only after forwarding resumes (or at `stop()`),
        so it still counts in `active_connections` until then.
        """
        flowing = self._require_flowing()
        if on:
            flowing.clear()
        else:
            flowing.set()

    def refuse_new(self, on: bool = True, *, mode: RefuseMode = "refuse") -> None:
        """Turn new client connections away (or stop doing so).

        ``mode="refuse"`` (the default) closes the listening socket, so the
        kernel answers a connect with RST: the client gets ECONNREFUSED, just
        as when the server is down (asyncmy: OperationalError 2003).  A bound,
        non-listening socket keeps the port meanwhile, so turning it off can
        listen on the same port again; that re-bind raises OSError in the
        unlikely case the port was taken anyway.

        ``mode="reset"`` keeps accepting and closes each new connection with
        RST at once, like a server that dies during the handshake.  Where the
        client sees ECONNRESET depends on timing: on loopback usually while
        its connect is still completing (asyncmy: OperationalError 2003),
        otherwise on reading the greeting (2013).  In between, asyncmy on
        uvloop can raise a bare RuntimeError ("Transport does not expose
        socket instance") from its keep-alive setup on the dead transport.

        Existing connections are not affected either way.
        """
        if not on:
            self._refusing = None
            self._ensure_listening()
            return
        self._refusing = mode
        if mode == "refuse":
            self._unlisten()
        else:
            self._ensure_listening()

    def set_latency(self, seconds: float) -> None:
        """Delay every chunk read from now on by `seconds`, both directions.

        A chunk is written no earlier than `seconds` after it was read, and
        chunks keep their order (a chunk never overtakes the one before it,
        even after the latency is lowered).
        """
        if seconds < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {seconds!r}")
        self._latency = float(seconds)

    def heal(self) -> None:
        """Back to plain forwarding: no blackhole, no refusing, no latency."""
        self.refuse_new(False)
        self._latency = 0.0
        if self._flowing is not None:
            self._flowing.set()

    def _require_flowing(self) -> asyncio.Event:
        if self._flowing is None:
            raise RuntimeError("FaultProxy is not started")
        return self._flowing

    # -- counters ------------------------------------------------------------

    @property
    def active_connections(self) -> int:
        """Client connections currently held open by the proxy."""
        return len(self._links)

    @property
    def total_connections(self) -> int:
        """Client connections accepted since start, reset-on-accept ones included.

        Connections refused by the kernel (``refuse_new(mode="refuse")``)
        never reach the proxy and are not counted.
        """
        return self._total

    # -- listening -----------------------------------------------------------

    def _listen(self, sock: socket.socket) -> None:
        assert self._loop is not None
        sock.listen(_BACKLOG)
        self._loop.add_reader(sock.fileno(), self._accept_ready, sock)
        self._listener = sock

    def _unlisten(self) -> None:
        """Stop listening at once: later connects are refused by the kernel."""
        if self._listener is None or self._loop is None:
            return
        self._loop.remove_reader(self._listener.fileno())
        self._listener.close()
        self._listener = None

    def _ensure_listening(self) -> None:
        if self._listener is not None or self._bound is None or self._stopping:
            return
        self._listen(_bound_socket(*self._bound))

    def _accept_ready(self, listener: socket.socket) -> None:
        # Take what is queued now; a cap keeps one callback from starving
        # the loop, and the reader fires again for the rest.
        for _ in range(_BACKLOG):
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError:
                # Out of descriptors or similar: retry on the next readiness.
                return
            self._on_accept(sock)

    def _on_accept(self, sock: socket.socket) -> None:
        self._total += 1
        if self._stopping or self._refusing == "reset":
            _set_rst_on_close(sock)
            sock.close()
            return
        sock.setblocking(False)
        link = _Link(sock)
        self._links.add(link)
        self._spawn(link, self._serve(link))

    # -- forwarding ----------------------------------------------------------

    def _spawn(self, link: _Link, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        link.tasks.add(task)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(link.tasks.discard)

    def _close_link(self, link: _Link, *, mode: _CloseMode) -> None:
        link.close(mode=mode)
        self._links.discard(link)

    async def _serve(self, link: _Link) -> None:
        """Wrap the client socket, open the server side, start the pumps."""
        try:
            reader, writer = await asyncio.open_connection(sock=link.sock)
        except OSError:
            self._close_link(link, mode="abort")
            link.sock.close()
            return
        link.attach_client(reader, writer)
        if link.closed:
            return
        # A partitioned network would not let the connect through either.
        await self._require_flowing().wait()
        try:
            server_reader, server = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            # Mirror an unreachable server as an abrupt close to the client.
            self._close_link(link, mode="reset")
            return
        link.server = server
        if link.closed:  # reset_all() ran while we were connecting
            server.transport.abort()
            return
        up: _Queue = asyncio.Queue(_QUEUE_CHUNKS)
        down: _Queue = asyncio.Queue(_QUEUE_CHUNKS)
        self._spawn(link, self._read_side(link, reader, up))
        self._spawn(link, self._write_side(link, up, server))
        self._spawn(link, self._read_side(link, server_reader, down))
        self._spawn(link, self._write_side(link, down, writer))

    async def _read_side(self, link: _Link, src: asyncio.StreamReader, queue: _Queue) -> None:
        """Read chunks from `src` into the delay line until end of stream."""
        flowing = self._require_flowing()
        loop = asyncio.get_running_loop()
        try:
            while True:
                # Not reading while blackholed is what keeps memory bounded.
                await flowing.wait()
                data = await src.read(_CHUNK_SIZE)
                if not data:
                    break
                await queue.put((loop.time() + self._latency, data))
        except OSError:
            self._close_link(link, mode="reset")
            return
        await queue.put(None)

    async def _write_side(self, link: _Link, queue: _Queue, dst: asyncio.StreamWriter) -> None:
        """Write chunks from the delay line to `dst` once each is due."""
        flowing = self._require_flowing()
        loop = asyncio.get_running_loop()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    # One side finished: MySQL has no half-closed sessions,
                    # so end the pair once what was read has been written.
                    self._close_link(link, mode="graceful")
                    return
                due, data = item
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                # A chunk read just before blackhole() is held here too.
                await flowing.wait()
                dst.write(data)
                await dst.drain()
        except OSError:
            self._close_link(link, mode="reset")
