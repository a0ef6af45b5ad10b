"""The pool's books, and every decision about them, in one synchronous class.

The ledger owns the idle stack, the slot table and its loans, the waiter
queue, the size and opening counts, the generation and the pool's life-cycle
state; no other module assigns them (``tests/test_ledger.py`` reads the
package with ``ast`` to keep it so).  It never awaits, never touches a socket and
never reads the clock: the time is passed in.  What it decides that needs
I/O (open a connection, close one, look again later) it asks of the workers
through three effects bound by the pool, each of which only starts work.

asyncio runs one task at a time, so each method is one atomic change: the
invariant ``idle + lent + opening <= size <= max_size`` (``size`` also
counts connections being checked, returned or closed) holds between any two
calls, and so at every ``await`` of the workers around it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Final

from ._backoff import Backoff
from ._config import PoolLimits
from ._counters import Counters
from ._protocols import Connection
from ._slot import Slot
from ._waiters import Waiter, WaitQueue
from ._wakeups import Wakeups
from .events import CloseReason

__all__ = ["CLOSED", "CLOSING", "FORKED", "NEW", "OPEN", "Ledger"]

NEW: Final = "new"
OPEN: Final = "open"
CLOSING: Final = "closing"
CLOSED: Final = "closed"
FORKED: Final = "forked"

OpenEffect = Callable[[int], None]
"""Start opening one connection for the given generation (its place is already counted)."""
CloseEffect = Callable[[Slot, CloseReason, bool], None]
"""Close a slot already taken off the books' lists (politely if the flag says so)."""
RecheckEffect = Callable[[float], None]
"""Ask the ledger's ``grow`` again after this many seconds."""

# Weight of the newest connect time in its running average.
_CONNECT_WEIGHT = 0.3
# Loan times are averaged over roughly this many recent returns.
_HOLD_WINDOW = 64
# The soonest growth is reconsidered after it declined to open.
_MIN_RECHECK = 0.002


def _ignore_open(_generation: int) -> None:
    raise RuntimeError("the ledger's effects were not bound")


def _ignore_close(_slot: Slot, _reason: CloseReason, _polite: bool) -> None:
    raise RuntimeError("the ledger's effects were not bound")


def _ignore_recheck(_delay: float) -> None:
    pass


class Ledger:
    """Idle stack, slot table and loans, waiters and counts, with the rules that change them."""

    __slots__ = (
        "_close",
        "_connect_s",
        "_hold_mark",
        "_idle_pop",
        "_idle_push",
        "_limits",
        "_open",
        "_queue_pop",
        "_queue_push",
        "_recheck",
        "_slot_of",
        "backoff",
        "check_after",
        "counters",
        "generation",
        "idle",
        "keep_idle",
        "last_lent_at",
        "lent_count",
        "max_size",
        "max_waiting",
        "opening",
        "size",
        "slots",
        "state",
        "timeout",
        "waiters",
        "wakeups",
    )

    # Set by _take_limits.
    _limits: PoolLimits
    max_size: int
    timeout: float
    max_waiting: int

    def __init__(self, limits: PoolLimits, *, keep_idle: bool = True) -> None:
        self._take_limits(limits)
        # An idle connection unused this long is pinged before hand-out (inf: never).
        self.check_after = math.inf if limits.check_after is None else limits.check_after
        # False for NullConnectionPool: a returned connection nobody waits for is closed.
        self.keep_idle = keep_idle
        self.state: str = NEW
        # Never replaced (cleared and refilled instead): the bound methods below stay its own.
        self.idle: deque[Slot] = deque()
        # Every slot with a connection, from connected to closed, keyed by
        # id(conn): the pool must not keep lent connections alive.  A loan
        # only flips ``slot.on_loan``: no insert and pop per loan (~350
        # instructions a pair compiled), and a return finds its slot by one
        # lookup.
        self.slots: dict[object, Slot] = {}
        self.lent_count = 0
        # When the loan that hand_out made last began: the slow hand-out's
        # caller reads it on its return, with no await in between, where a
        # lookup of the slot would cost ~390 instructions a wait.
        self.last_lent_at = 0.0
        # The fast paths' deque and dict methods, bound once: compiled code
        # calls a method of a deque or a dict by looking it up on the type
        # each time (PyObject_VectorcallMethod, ~150 instructions a call).
        self._idle_push: Callable[[Slot], None] = self.idle.append
        self._idle_pop: Callable[[], Slot] = self.idle.pop
        self._slot_of: Callable[[object], Slot | None] = self.slots.get
        self.waiters = WaitQueue()  # never replaced either
        self.wakeups = Wakeups()
        self._queue_push: Callable[[Waiter], None] = self.waiters.append
        self._queue_pop: Callable[[], Waiter] = self.waiters.popleft
        self.size = 0  # every slot that exists: opening, idle, lent, being returned or closed
        self.opening = 0
        self.generation = 0  # bumped by drain(): connections opened before it retire
        self.counters = Counters()
        self.backoff = Backoff()
        # Demand figures for growth: running averages of connect and loan times.
        self._connect_s: float | None = None
        # (usage seconds, returns) where the loan-time average's window starts.
        self._hold_mark = (0.0, 0)
        self._open: OpenEffect = _ignore_open
        self._close: CloseEffect = _ignore_close
        self._recheck: RecheckEffect = _ignore_recheck

    def bind(self, *, open: OpenEffect, close: CloseEffect, recheck: RecheckEffect) -> None:
        """Connect the ledger's decisions to the workers that carry them out."""
        self._open = open
        self._close = close
        self._recheck = recheck

    def _take_limits(self, limits: PoolLimits) -> None:
        self._limits = limits
        # What the hand-out reads at every wait, copied into native fields: a
        # field of the interpreted PoolLimits costs compiled code a generic
        # lookup (~170 instructions each, three per wait).
        self.max_size = limits.max_size
        self.timeout = limits.timeout
        self.max_waiting = limits.max_waiting

    @property
    def limits(self) -> PoolLimits:
        """The pool's sizes and durations (changed only through ``resize``)."""
        return self._limits

    @property
    def lent(self) -> dict[object, Slot]:
        """The slots lent out now, keyed by ``id(conn)`` (a new dict: for reading)."""
        return {key: slot for key, slot in self.slots.items() if slot.on_loan}

    def slot_of(self, conn: Connection) -> Slot | None:
        """The slot of ``conn`` while it is lent; None if it is not."""
        slot = self._slot_of(id(conn))
        return slot if slot is not None and slot.on_loan else None

    def _lend(self, slot: Slot) -> None:
        slot.on_loan = True
        self.lent_count += 1

    def _end_loan(self, slot: Slot) -> None:
        slot.on_loan = False
        self.lent_count -= 1

    def _unlist(self, slot: Slot) -> None:
        # Only its own entry: a newer connection may have its id already.
        if self.slots.get(slot.key) is slot:
            del self.slots[slot.key]

    # ------------------------------------------------------------------ life cycle

    def start(self, now: float) -> None:
        """The pool opened: start filling it to ``min_size``."""
        self.state = OPEN
        self.grow(now)

    def begin_close(self, error: BaseException) -> list[Slot]:
        """Stop lending; wake every waiter with ``error``; give the idle slots to close."""
        self.state = CLOSING
        self.waiters.fail_all(error)
        return self._take_all_idle()

    def finish_close(self) -> list[Slot]:
        """The pool is closed; whatever is still idle is the caller's to drop."""
        self.state = CLOSED
        return self._take_all_idle()

    def close_unopened(self) -> None:
        """``close()`` on a pool that was never opened."""
        self.state = CLOSED

    def forget_after_fork(self) -> list[Slot]:
        """In a forked child: forget every slot (they are the parent's) and refuse use."""
        leftovers = [*self.idle, *self.lent.values()]
        self.idle.clear()
        self.slots.clear()
        self.lent_count = 0
        self.waiters.clear()
        self.wakeups.forget()
        self.size = self.opening = 0
        self.state = FORKED
        return leftovers

    def _take_all_idle(self) -> list[Slot]:
        slots = list(self.idle)
        self.idle.clear()
        return slots

    # ------------------------------------------------------------------ hand-out

    def lend_fresh(self, now: float) -> Connection | None:
        """The fast path: the top idle connection, if nobody is queued and it is fresh.

        The caller has made sure it runs in the pool's loop.  Fresh means
        checked within ``check_after`` and not expired (one comparison, see
        ``Slot.fresh_until``), and the server has not hung up on it.
        """
        if self.idle and not self.waiters:
            # Popped, and pushed back if not fresh: compiled, ``idle[-1]`` is a
            # generic subscript with a boxed index, dearer than the bound pop.
            slot = self._idle_pop()
            try:
                usable = now < slot.fresh_until and not slot.stream.gone()
            except BaseException:
                self._idle_push(slot)  # a failing check leaves the books as they were
                raise
            if usable:
                conn = slot.conn
                slot.conn = None
                # _lend() written out, here and on the other fast paths: in
                # the pure-Python build each call is a frame.
                slot.on_loan = True
                self.lent_count += 1
                slot.lent_at = now  # also the loan's identity (see ConnectionContext)
                self.counters.requests_num += 1
                return conn
            self._idle_push(slot)
        return None

    def take_idle(self) -> Slot | None:
        """Pop an idle slot (lent, unchecked) if nobody is queued ahead of the caller."""
        self.waiters.prune()
        if self.waiters or not self.idle:
            return None
        slot = self.idle.pop()
        self._lend(slot)
        return slot

    def enqueue(self, waiter: Waiter, now: float) -> None:
        """A request must wait: queue it, serve it from idle if possible, maybe grow."""
        self._queue_push(waiter)
        # Under load nothing is idle and the pool is full: skip both calls.
        if self.idle:
            self._serve_waiters_from_idle(now)
        if self.size < self.max_size:
            self.grow(now)

    def give_up(self, waiter: Waiter, now: float) -> None:
        """A waiting request is leaving (cancelled, timed out): pass on what it was given."""
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            slot = waiter.result()
            if slot is not None:
                self._end_loan(slot)
                self.put_back(slot, now)
                return
        waiter.cancel()
        self.waiters.discard(waiter)

    def hand_out(self, slot: Slot, now: float) -> Connection:
        """A checked slot goes to its borrower: the loan starts now."""
        slot.lent_at = self.last_lent_at = now
        if not slot.proven:
            slot.proven = True
            self.backoff.proven()
        conn = slot.conn
        assert conn is not None
        slot.conn = None
        return conn

    def _serve_waiters_from_idle(self, now: float) -> None:
        while self.idle and self.waiters:
            slot = self.idle.pop()
            if not self._lend_to_waiter(slot, now):
                self.idle.append(slot)
                return

    def _lend_to_waiter(self, slot: Slot, now: float) -> bool:
        """Hand ``slot`` to the oldest live waiter; False (slot untouched) if none."""
        # WaitQueue.hand_off, inlined: every return under load comes here.
        # serve() passes over a waiter already done (cancelled, timed out),
        # and wakes a live one later, not now.
        waiters = self.waiters
        while waiters:
            if self.wakeups.serve(self._queue_pop(), slot):
                slot.on_loan = True
                self.lent_count += 1
                # The loan starts now (hand_out sets it again when the waiter
                # wakes): growth reads loan ages, and the previous loan's
                # start would make this one look long.
                slot.lent_at = now
                return True
        return False

    # ------------------------------------------------------------------ return

    def return_clean(self, conn: Connection, now: float, lease: float | None = None) -> Slot | None:
        """The fast return of a connection the caller found clean; None if not lent.

        A clean connection goes to the oldest waiter or onto the idle stack,
        with no round trip; an expired one is closed politely (``slot.closing``
        then says so).  ``lease``, when given, must match the loan's start
        (see ``take_back``): None, and nothing changed, if it does not.
        """
        slot = self._slot_of(id(conn))
        if slot is None or not slot.on_loan:
            return None
        if lease is not None and slot.lent_at != lease:
            return None  # a later loan of the connection: not the caller's
        slot.on_loan = False
        self.lent_count -= 1
        slot.conn = conn
        held = slot.held = now - slot.lent_at
        self.counters.usage_s += held
        if now >= slot.expires_at:
            self.retire(slot, self.expiry_reason(slot), now)
            return slot
        slot.idle_since = now
        fresh = now + self.check_after
        slot.fresh_until = fresh if fresh < slot.expires_at else slot.expires_at
        if not self.waiters or not self._lend_to_waiter(slot, now):
            if self.keep_idle:
                self._idle_push(slot)
            else:
                self.retire(slot, "idle", now)
        return slot

    def take_back(self, conn: Connection, now: float, lease: float | None = None) -> Slot | None:
        """End the loan of a returned connection, for the slow return.

        ``lease``, when given, must match the loan's start: a connection
        returned twice by a context manager (and lent again meanwhile) is
        refused.  The slot is then in no list until ``put_back`` or
        ``retire``: the return work owns it.
        """
        slot = self.slot_of(conn)
        if slot is None or (lease is not None and slot.lent_at != lease):
            return None
        self._end_loan(slot)
        slot.conn = conn
        held = slot.held = now - slot.lent_at
        self.counters.usage_s += held
        return slot

    def put_back(self, slot: Slot, now: float) -> None:
        """A usable slot goes to the oldest waiter, or else to the idle stack.

        Unless it should not exist any more: drained, surplus after
        ``resize()``, or the pool is closing; then it is closed politely.
        """
        if self.state != OPEN:
            self.retire(slot, "pool_closed", now)
        elif slot.generation != self.generation:
            self.retire(slot, "drain", now)
        elif self.size > self.max_size:
            self.retire(slot, "resize", now)
        elif self.waiters and self._lend_to_waiter(slot, now):
            pass
        elif self.keep_idle:
            self.idle.append(slot)
        else:
            self.retire(slot, "idle", now)

    def refresh(self, slot: Slot, now: float) -> None:
        """A slot passed a check: no ping needed for another ``check_after``."""
        slot.idle_since = now
        fresh = now + self.check_after
        slot.fresh_until = fresh if fresh < slot.expires_at else slot.expires_at

    # ------------------------------------------------------------------ closing

    def retire(self, slot: Slot, reason: CloseReason, now: float, *, polite: bool = True) -> None:
        """Take ``slot`` off the lists and have it closed; its place is freed once closed."""
        if slot.on_loan:
            self._end_loan(slot)
        if slot.closing or slot.closed:
            return
        slot.closing = True
        self._close(slot, reason, polite)

    def closed(self, slot: Slot, now: float) -> bool:
        """A slot's socket is gone: free its place (idempotent); True the first time."""
        if slot.closed:
            return False
        slot.closed = True
        slot.closing = True
        self._unlist(slot)
        self.size -= 1
        self.grow(now)
        return True

    def expiry_reason(self, slot: Slot) -> CloseReason:
        """Why an expired slot retires: drained, shrunk away by resize(), or simply old."""
        if slot.generation != self.generation:
            return "drain"
        return "resize" if slot.expires_at == -math.inf else "lifetime"

    def orphaned(self, slot: Slot) -> bool:
        """Whether a slot is in no list and no close owns it: its owner task was cut short."""
        if slot.closed or slot.closing or slot.on_loan:
            return False
        return all(s is not slot for s in self.idle)

    def collected(self, slot: Slot) -> bool:
        """A lent connection was garbage-collected: forget the loan. False if not lent."""
        if not slot.on_loan:
            return False
        self._end_loan(slot)
        self._unlist(slot)
        self.counters.returns_bad += 1
        return True

    def lost(self, slot: Slot, exc: BaseException, now: float, reason: CloseReason) -> None:
        """A connection failed its check or was found dead: close it, maybe pace openers.

        One that never served anyone, opened since the last failure, counts as
        a failed connect: a server that accepts connections and then fails
        them is not flooded with new ones.  (Connections opened before the
        last failure are old news: a restart that kills sixteen idle
        connections is one failure, not sixteen.)
        """
        self.counters.connections_lost += 1
        backoff = self.backoff
        if not slot.proven and slot.created_at >= backoff.last_failure_at:
            backoff.failed(now, exc, connecting=False)
        self.retire(slot, reason, now, polite=False)

    # ------------------------------------------------------------------ opening

    def grow(self, now: float) -> None:
        """Start openers for a missing ``min_size`` and for demand the returns won't meet."""
        if self.state != OPEN:
            return
        room = self.max_size - self.size
        if room <= 0:
            return
        wanted = self._wanted(now)
        if self.backoff.failing:
            # One opener probes a failing server; the rest follow its success.
            wanted = min(wanted, 1 - self.opening)
        for _ in range(min(room, wanted)):
            self.size += 1
            self.opening += 1
            self._open(self.generation)

    def _wanted(self, now: float) -> int:
        below_min = self.limits.min_size - self.size
        self.waiters.prune()
        uncovered = len(self.waiters) - self.opening
        if uncovered <= 0:
            return below_min
        connect = self._connect_s
        if connect is None:
            return max(below_min, uncovered)  # nothing known yet: grow
        hold = self._hold_estimate()
        coming_back = self._returns_before_connect(now, connect, hold)
        recheck = max(_MIN_RECHECK, connect / 2)
        if coming_back >= uncovered:
            # Returns will serve them sooner than a new connection could: look
            # again later, when the loans' ages say more.
            self._recheck(recheck)
            return below_min
        need = uncovered - coming_back
        if hold is None:
            # No loan has ended yet: too little to go on (a loop stalled by a
            # burst makes every loan look old), so grow one connection at a
            # time, psycopg_pool's way, until returns say how long loans last.
            # Each new connection asks again, so long loans still grow at
            # connect speed.
            need = min(need, 1 - self.opening)
            self._recheck(recheck)
        else:
            # Enough connections to serve the rest of the backlog within about
            # one more connect time, counting those lent now, which keep
            # serving too: a backlog of short loans gets one or two, long
            # loans get one each.
            enough = math.ceil(need * hold / connect) - self.lent_count
            need = min(need, max(1, enough))
        return max(below_min, need)

    def _returns_before_connect(self, now: float, connect: float, hold: float | None) -> int:
        """How many waiters the lent connections will serve before a new one is open.

        A loan is expected to last the average loan time; one already older
        than that is expected to last about as long again as it has (a long
        loan tends to go on), so overrunning loans stop counting and the pool
        grows.
        """
        served = 0
        for slot in self.slots.values():
            if not slot.on_loan:
                continue
            age = now - slot.lent_at
            if hold is not None and age < hold:
                remaining, per_loan = hold - age, hold
            else:
                remaining, per_loan = age, max(age, hold or 0.0)
            if remaining < connect:
                served += 1 + int((connect - remaining) / max(per_loan, 1e-4))
        return served

    def _hold_estimate(self) -> float | None:
        """The average loan time over roughly the last ``_HOLD_WINDOW`` returns.

        Read from the counters the hot path keeps anyway (total time lent,
        hand-outs), so measuring it costs the hand-out nothing.
        """
        c = self.counters
        # Requests counted at their start: those still waiting or lent have not returned.
        returned = c.requests_num - c.requests_errors - self.lent_count - len(self.waiters)
        used = c.usage_s
        mark_used, mark_returned = self._hold_mark
        if returned < mark_returned or used < mark_used:  # pop_stats() reset the counters
            mark_used, mark_returned = 0.0, 0
        n = returned - mark_returned
        if n <= 0:
            return None
        average = (used - mark_used) / n
        if n > 2 * _HOLD_WINDOW:
            # Slide the window: keep the newest _HOLD_WINDOW returns' worth.
            mark_used, mark_returned = used - average * _HOLD_WINDOW, returned - _HOLD_WINDOW
        self._hold_mark = (mark_used, mark_returned)
        return average

    def opener_connected(self, slot: Slot, connect_s: float, now: float) -> None:
        """An opener brought a connection: it takes the opener's place."""
        self.opening -= 1
        self.backoff.connected()
        self.slots[slot.key] = slot
        self.counters.connections_num += 1
        self.counters.connections_ms += connect_s * 1000.0
        known = self._connect_s
        self._connect_s = (
            connect_s if known is None else known + _CONNECT_WEIGHT * (connect_s - known)
        )
        self.refresh(slot, now)
        self.put_back(slot, now)
        # Connecting works (again): waiters left behind while it was failing
        # may now be served by more openers.
        self.grow(now)

    def opener_failed(self, exc: BaseException, now: float, *, fatal: bool) -> float:
        """An attempt to open failed; returns the back-off delay before the next."""
        self.counters.connections_errors += 1
        if fatal:
            self.backoff.fatal_error = exc
        return self.backoff.failed(now, exc)

    def server_answers(self, now: float) -> bool:
        """The server was seen accepting connections: end a back-off pause, grow now.

        False (nothing changed) when the pool is not open or no pause was pending.
        """
        if self.state != OPEN or not self.backoff.retry_now(now):
            return False
        self.grow(now)
        return True

    def opener_should_retry(self) -> bool:
        """Whether a failed opener keeps its place and tries again (alone while failing)."""
        if self.state != OPEN or self.opening > 1:
            return False
        self.waiters.prune()
        return bool(self.waiters) or self.size - self.opening < self.limits.min_size

    def opener_ended(self, now: float) -> None:
        """An opener stopped without a connection: free its place."""
        self.opening -= 1
        self.size -= 1
        self.grow(now)

    def opener_not_started(self) -> None:
        """An opener could not even start (the pool's loop is closed): free its place.

        Without growing again: another opener would not start either.
        """
        self.opening -= 1
        self.size -= 1

    # ------------------------------------------------------------------ maintenance

    def plan_maintenance(self, now: float) -> list[Slot]:
        """Retire worn-out and surplus idle slots; take out the ones to ping, and return them."""
        lim = self.limits
        keepalive = lim.keepalive
        ping: list[Slot] = []
        retire: list[tuple[Slot, CloseReason]] = []
        keep: deque[Slot] = deque()
        surplus = self.size - lim.min_size
        # Idle connections already seen dead leave in this round whatever else
        # is decided: count them out of the surplus first, or the round closes
        # as many healthy ones on top and leaves the pool below min_size.
        for slot in self.idle:
            conn = slot.conn
            assert conn is not None
            if not conn.connected or conn._stream_broken:
                surplus -= 1
        # Oldest-used first (the stack's bottom): shrinking closes the least needed.
        for slot in self.idle:
            conn = slot.conn
            assert conn is not None
            dead = not conn.connected or conn._stream_broken  # counted above
            if slot.generation != self.generation:
                retire.append((slot, "drain"))
                if not dead:
                    surplus -= 1
            elif now >= slot.expires_at:
                retire.append((slot, "lifetime"))
                if not dead:
                    surplus -= 1
            elif dead:
                ping.append(slot)  # seen dead already: the ping worker drops it, no round trip
            elif surplus > 0 and now - slot.idle_since >= lim.max_idle:
                retire.append((slot, "idle"))
                surplus -= 1
            elif keepalive is not None and now - slot.idle_since >= keepalive:
                ping.append(slot)
            else:
                keep.append(slot)
        idle = self.idle
        idle.clear()
        idle.extend(keep)
        for slot, reason in retire:
            self.retire(slot, reason, now)
        self.grow(now)
        return ping

    def take_for_check(self, slot: Slot) -> bool:
        """Take one idle slot out for ``pool.check()``; False if it is no longer idle."""
        for index, candidate in enumerate(self.idle):
            if candidate is slot:
                del self.idle[index]
                return True
        return False

    def report_long_loans(self, now: float, threshold: float) -> list[Slot]:
        """Loans older than ``threshold`` not yet warned about (each is warned once)."""
        found = []
        for slot in self.slots.values():
            if slot.on_loan and not slot.warned and now - slot.lent_at >= threshold:
                slot.warned = True
                found.append(slot)
        return found

    # ------------------------------------------------------------------ operations

    def drain(self, now: float) -> tuple[int, int]:
        """Retire every current slot: idle ones now, lent ones when returned."""
        self.generation += 1
        lent = self.lent_count
        for slot in self.lent.values():
            slot.expires_at = -math.inf  # retire on return
        idle = self._take_all_idle()
        for slot in idle:
            self.retire(slot, "drain", now)
        self.grow(now)
        return len(idle), lent

    def resize(self, limits: PoolLimits, now: float) -> None:
        """New size limits: close surplus idle slots now, surplus lent ones on return."""
        self._take_limits(limits)
        # Connections being opened are turned away when they arrive (put_back).
        excess = self.size - self.opening - limits.max_size
        surplus: list[Slot] = []
        while excess > 0 and self.idle:
            surplus.append(self.idle.popleft())  # the least recently used
            excess -= 1
        for slot in list(self.lent.values())[: max(excess, 0)]:
            slot.expires_at = -math.inf  # retire on return
        for slot in surplus:
            self.retire(slot, "resize", now)
        self.grow(now)

    def is_quiet(self) -> bool:
        """Nothing exists any more: every slot closed."""
        return self.size == 0
