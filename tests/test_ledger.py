"""The ledger alone: no server, no running event loop, the time passed in.

A hypothesis state machine drives random sequences of acquire, release,
cancel, connect-ok, connect-fail, close, drain, resize, maintenance and the
passing of time, and checks the books after every step.  A second test reads
the package with ``ast`` to keep every write to the books inside the ledger.
"""

from __future__ import annotations

import ast
import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from aiopool._config import PoolLimits
from aiopool._ledger import OPEN, Ledger
from aiopool._slot import Slot
from aiopool._waiters import Waiter

PACKAGE = Path(__file__).resolve().parent.parent / "aiopool"


def limits(min_size: int, max_size: int, **overrides: Any) -> PoolLimits:
    values: dict[str, Any] = {
        "min_size": min_size,
        "max_size": max_size,
        "timeout": 30.0,
        "max_waiting": 0,
        "max_lifetime": 100.0,
        "max_idle": 10.0,
        "check_after": 1.0,
        "keepalive": None,
    }
    values.update(overrides)
    return PoolLimits.build(**values)


class FakeConn:
    """Just what the ledger reads of a connection."""

    def __init__(self) -> None:
        self.connected = True
        self._stream_broken = False


class Books(RuleBasedStateMachine):
    """Random operations on a ledger whose effects are recorded, not run."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()  # futures only: never run
        self.now = 0.0
        self.openers: list[int] = []  # generations of openers started, not yet finished
        self.closing: list[Slot] = []  # slots handed to the close effect, not yet closed
        self.rechecks = 0
        self.held: list[FakeConn] = []
        self.waiters: list[Waiter] = []
        self.keep: list[FakeConn] = []  # the ledger holds lent connections weakly
        self.ceiling = 0

    def teardown(self) -> None:
        self.loop.close()

    @initialize(min_size=st.integers(0, 3), extra=st.integers(0, 3))
    def start(self, min_size: int, extra: int) -> None:
        self.ledger = Ledger(limits(min_size, max(1, min_size + extra)))
        self.ledger.bind(open=self._open, close=self._close, recheck=self._recheck)
        self.ledger.start(self.now)
        self.ceiling = self.ledger.limits.max_size

    # ------------------------------------------------------------ effects

    def _open(self, generation: int) -> None:
        self.openers.append(generation)

    def _close(self, slot: Slot, reason: str, polite: bool) -> None:
        assert slot.closing
        self.closing.append(slot)

    def _recheck(self, delay: float) -> None:
        assert delay > 0
        self.rechecks += 1

    # ------------------------------------------------------------ rules

    @rule(seconds=st.sampled_from([0.0, 0.001, 0.5, 2.0, 20.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @precondition(lambda self: self.ledger.state == OPEN)
    @rule()
    def acquire(self) -> None:
        conn = self.ledger.lend_fresh(self.now)
        if conn is not None:
            self.held.append(conn)  # type: ignore[arg-type]
            return
        slot = self.ledger.take_idle()
        if slot is not None:
            self.held.append(self.ledger.hand_out(slot, self.now))  # type: ignore[arg-type]
            return
        waiter: Waiter = self.loop.create_future()
        self.ledger.enqueue(waiter, self.now)
        self.waiters.append(waiter)

    @precondition(lambda self: self.waiters)
    @rule(data=st.data())
    def waiter_served_or_leaves(self, data: st.DataObject) -> None:
        waiter = self.waiters.pop(data.draw(st.integers(0, len(self.waiters) - 1)))
        leave = data.draw(st.booleans())
        if waiter.done() and not leave:
            slot = waiter.result()
            assert slot is not None
            self.held.append(self.ledger.hand_out(slot, self.now))  # type: ignore[arg-type]
        else:
            self.ledger.give_up(waiter, self.now)  # cancelled or timed out

    @precondition(lambda self: self.held)
    @rule(data=st.data(), clean=st.booleans())
    def release(self, data: st.DataObject, clean: bool) -> None:
        conn = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        if clean:
            assert self.ledger.return_clean(conn, self.now) is not None  # type: ignore[arg-type]
            return
        slot = self.ledger.take_back(conn, self.now)  # type: ignore[arg-type]
        assert slot is not None
        if data.draw(st.booleans()):
            self.ledger.put_back(slot, self.now)
        else:
            self.ledger.retire(slot, "returned_bad", self.now, polite=False)

    @precondition(lambda self: self.openers)
    @rule(ok=st.booleans())
    def opener_finishes(self, ok: bool) -> None:
        generation = self.openers.pop(0)
        if ok:
            conn = FakeConn()
            self.keep.append(conn)
            slot = Slot(conn, self.now, self.now + 100.0, generation, lambda _s: None)  # type: ignore[arg-type]
            self.ledger.opener_connected(slot, 0.05, self.now)
            return
        self.ledger.opener_failed(ConnectionRefusedError("refused"), self.now, fatal=False)
        if self.ledger.opener_should_retry():
            self.openers.append(generation)
        else:
            self.ledger.opener_ended(self.now)

    @precondition(lambda self: self.closing)
    @rule()
    def close_finishes(self) -> None:
        slot = self.closing.pop(0)
        assert self.ledger.closed(slot, self.now)
        assert not self.ledger.closed(slot, self.now), "closed() must be idempotent"

    @precondition(lambda self: self.ledger.idle)
    @rule()
    def idle_connection_dies(self) -> None:
        slot = self.ledger.idle[-1]
        assert slot.conn is not None
        slot.conn._stream_broken = True

    @precondition(lambda self: self.ledger.state == OPEN)
    @rule()
    def maintenance(self) -> None:
        for slot in self.ledger.plan_maintenance(self.now):
            assert slot.conn is not None
            if slot.conn._stream_broken:
                self.ledger.lost(slot, ConnectionError("gone"), self.now, "broken")
            else:
                self.ledger.refresh(slot, self.now)
                self.ledger.put_back(slot, self.now)

    @precondition(lambda self: self.ledger.state == OPEN)
    @rule()
    def drain(self) -> None:
        self.ledger.drain(self.now)

    @precondition(lambda self: self.ledger.state == OPEN)
    @rule(min_size=st.integers(0, 3), extra=st.integers(0, 3))
    def resize(self, min_size: int, extra: int) -> None:
        self.ceiling = max(self.ceiling, self.ledger.size)
        self.ledger.resize(limits(min_size, max(1, min_size + extra)), self.now)

    @precondition(lambda self: self.ledger.state == OPEN)
    @rule()
    def recheck_fires(self) -> None:
        self.ledger.grow(self.now)

    # ------------------------------------------------------------ invariants

    @invariant()
    def books_balance(self) -> None:
        ledger = self.ledger
        in_return = 0  # this machine never leaves a slot between take_back and put_back
        closing = sum(1 for s in self.closing if not s.closed)
        counted = len(ledger.idle) + len(ledger.lent) + ledger.opening + closing + in_return
        assert counted == ledger.size, (len(ledger.idle), len(ledger.lent), ledger.opening, closing)
        assert ledger.opening == len(self.openers)
        # Never above max_size, except a surplus left by resize() shrinking.
        assert ledger.size <= max(ledger.limits.max_size, self.ceiling)
        if ledger.size <= ledger.limits.max_size:
            self.ceiling = ledger.limits.max_size

    @invariant()
    def bound_methods_act_on_the_live_collections(self) -> None:
        # The fast paths call methods bound once at construction: replacing the
        # idle deque, the wait queue or the lent table would leave them
        # working on a stale one (the maintenance sweep refills the deque).
        ledger = self.ledger
        assert ledger._idle_push.__self__ is ledger.idle  # type: ignore[attr-defined]
        assert ledger._idle_pop.__self__ is ledger.idle  # type: ignore[attr-defined]
        assert ledger._slot_of.__self__ is ledger.slots  # type: ignore[attr-defined]
        assert ledger._queue_push.__self__ is ledger.waiters  # type: ignore[attr-defined]
        assert ledger._queue_pop.__self__ is ledger.waiters  # type: ignore[attr-defined]

    @invariant()
    def the_lent_count_is_the_slots_on_loan(self) -> None:
        ledger = self.ledger
        assert ledger.lent_count == sum(slot.on_loan for slot in ledger.slots.values())
        assert all(ledger.slots.get(slot.key) is slot for slot in ledger.idle)
        assert all(not slot.closed for slot in ledger.slots.values()), "a closed slot stays listed"

    @invariant()
    def no_slot_twice(self) -> None:
        ledger = self.ledger
        idle_ids = [id(s) for s in ledger.idle]
        lent_ids = [id(s) for s in ledger.lent.values()]
        assert len(set(idle_ids + lent_ids)) == len(idle_ids) + len(lent_ids)
        assert all(not s.closing and not s.closed for s in ledger.idle)

    @invariant()
    def nobody_waits_beside_an_idle_connection(self) -> None:
        ledger = self.ledger
        live = [w for w in ledger.waiters if not w.done()]
        if live:
            assert not ledger.idle
            room = ledger.size < ledger.limits.max_size
            # Either something is being opened, or growth was deferred with a look-again.
            assert not room or ledger.opening or self.rechecks or ledger.backoff.failing

    @invariant()
    def lent_are_held(self) -> None:
        held = {id(c) for c in self.held}
        served = {
            w.result().key
            for w in self.waiters
            if w.done() and not w.cancelled() and w.result() is not None
        }
        assert set(self.ledger.lent) == held | served


TestBooks = Books.TestCase
TestBooks.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_ledger_decides_without_a_loop() -> None:
    """Lend, queue, hand over on return: all without an event loop running."""
    loop = asyncio.new_event_loop()
    try:
        opened: list[int] = []
        ledger = Ledger(limits(0, 1))
        ledger.bind(open=opened.append, close=lambda *a: None, recheck=lambda d: None)
        ledger.start(0.0)
        assert opened == [] and ledger.size == 0
        waiter: Waiter = loop.create_future()
        ledger.enqueue(waiter, 0.0)
        assert opened == [0] and ledger.size == 1 and ledger.opening == 1
        conn = FakeConn()
        slot = Slot(conn, 0.0, math.inf, 0, lambda _s: None)  # type: ignore[arg-type]
        ledger.opener_connected(slot, 0.01, 0.01)
        assert waiter.done() and waiter.result() is slot, "the new connection went to the waiter"
        lent = ledger.hand_out(slot, 0.01)
        assert lent is conn and ledger.lent[id(conn)] is slot
        second: Waiter = loop.create_future()
        ledger.enqueue(second, 0.02)
        assert ledger.opening == 0, "max_size reached: nothing more is opened"
        ledger.return_clean(lent, 0.03)
        assert second.result() is slot, "a return goes straight to the oldest waiter"
    finally:
        loop.close()


class _FailingProbeConn(FakeConn):
    """A connection whose liveness probe raises."""

    @property
    def _stream_broken(self) -> bool:
        raise OSError("probe failed")

    @_stream_broken.setter
    def _stream_broken(self, value: bool) -> None:
        pass


def _started(min_size: int, max_size: int) -> Ledger:
    """An open ledger whose effects do nothing."""
    ledger = Ledger(limits(min_size, max_size))
    ledger.bind(open=lambda g: None, close=lambda *a: None, recheck=lambda d: None)
    ledger.start(0.0)
    return ledger


def _connected(ledger: Ledger, conn: FakeConn, now: float) -> Slot:
    """An opener of ``ledger`` brings ``conn`` at ``now``."""
    slot = Slot(conn, now, math.inf, 0, lambda _s: None)  # type: ignore[arg-type]
    ledger.opener_connected(slot, 0.01, now)
    return slot


def test_a_failing_liveness_probe_leaves_the_connection_idle() -> None:
    """The fast hand-out takes the slot off the stack before probing it: an error puts it back."""
    ledger = _started(0, 1)
    slot = _connected(ledger, _FailingProbeConn(), 0.01)
    with pytest.raises(OSError, match="probe failed"):
        ledger.lend_fresh(0.02)
    assert list(ledger.idle) == [slot] and not ledger.lent
    assert slot.conn is not None, "the slot still holds its connection"


def test_a_closed_slot_leaves_the_entry_of_a_newer_connection_with_its_id() -> None:
    """A slot closes after a new connection took its id: the new one stays listed.

    A lent slot retired while lent stays listed until its socket is closed;
    if the borrower drops the connection meanwhile, Python may give its id to
    the next connection (simulated here by giving the new slot the same key).
    """
    ledger = _started(2, 2)
    old_conn = FakeConn()
    old = _connected(ledger, old_conn, 0.01)
    assert ledger.lend_fresh(0.02) is old_conn
    ledger.retire(old, "drain", 0.03)  # lent: closed by its socket, listed until then
    new_conn = FakeConn()
    new = Slot(new_conn, 0.04, math.inf, 0, lambda _s: None)  # type: ignore[arg-type]
    new.key = old.key
    ledger.opener_connected(new, 0.01, 0.04)
    assert ledger.closed(old, 0.05)
    assert ledger.slots.get(new.key) is new, "the old slot's close removed the new one's entry"
    assert ledger.lend_fresh(0.06) is new_conn and new.on_loan and ledger.lent_count == 1


def test_growth_waits_for_short_loans_and_follows_long_ones() -> None:
    """Waiters are served by returns when loans are short; long loans grow the pool."""
    loop = asyncio.new_event_loop()
    try:
        opened: list[int] = []
        rechecks: list[float] = []
        ledger = Ledger(limits(1, 10))
        ledger.bind(open=opened.append, close=lambda *a: None, recheck=rechecks.append)
        ledger.start(0.0)
        conn = FakeConn()
        slot = Slot(conn, 0.0, math.inf, 0, lambda _s: None)  # type: ignore[arg-type]
        ledger.opener_connected(slot, 0.150, 0.15)  # connecting takes 150 ms
        opened.clear()
        # Many loans of 2 ms have been seen.
        for i in range(20):
            c = ledger.lend_fresh(1.0 + i)
            assert c is not None
            ledger.return_clean(c, 1.002 + i)
        taken = ledger.take_idle()
        assert taken is not None
        ledger.hand_out(taken, 30.0)
        waiters: list[Waiter] = [loop.create_future() for _ in range(5)]
        for w in waiters:
            ledger.enqueue(w, 30.0)
        assert opened == [], "five 2 ms loans are served long before a 150 ms connect"
        assert rechecks, "but growth is looked at again later"
        # The loan runs on for a second: it will not come back soon, so the pool
        # grows; five 2 ms loans are work for one new connection, not five.
        ledger.grow(31.0)
        assert len(opened) == 1
    finally:
        loop.close()


def test_long_loans_get_a_connection_each() -> None:
    loop = asyncio.new_event_loop()
    try:
        opened: list[int] = []
        ledger = Ledger(limits(1, 10))
        ledger.bind(open=opened.append, close=lambda *a: None, recheck=lambda d: None)
        ledger.start(0.0)
        slot = Slot(FakeConn(), 0.0, math.inf, 0, lambda _s: None)  # type: ignore[arg-type]
        ledger.opener_connected(slot, 0.005, 0.005)  # connecting takes 5 ms
        opened.clear()
        # The pool counts each request as it starts (as _handout.acquire_slow does).
        ledger.counters.requests_num += 11
        for i in range(5):  # loans of 500 ms have been seen
            taken = ledger.take_idle()
            assert taken is not None
            conn = ledger.hand_out(taken, 1.0 + i)
            ledger.return_clean(conn, 1.5 + i)
        taken = ledger.take_idle()
        assert taken is not None
        ledger.hand_out(taken, 10.0)
        for _ in range(5):
            ledger.enqueue(loop.create_future(), 10.0)
        assert len(opened) == 5, "each waiter's 500 ms loan is worth its own connection"
    finally:
        loop.close()


# ---------------------------------------------------------------- ownership

BOOKS = {
    "idle",
    "slots",
    "lent_count",
    "last_lent_at",
    "waiters",
    "size",
    "opening",
    "generation",
    "state",
}
SLOT_BOOKS = {"closed", "closing", "expires_at", "lent_at", "on_loan", "proven"}
MUTATORS = {
    "append",
    "appendleft",
    "clear",
    "discard",
    "extend",
    "fail_all",
    "hand_off",
    "insert",
    "pop",
    "popitem",
    "popleft",
    "prune",
    "remove",
    "rotate",
    "setdefault",
    "update",
}
# Modules whose classes may assign these names to themselves (their own objects).
OWN_STATE = {"_slot.py": SLOT_BOOKS | {"generation"}, "_cluster_node.py": {"state"}}


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, ast.AugAssign | ast.AnnAssign):
        return [node.target]
    if isinstance(node, ast.Delete):
        return list(node.targets)
    return []


def _writes(tree: ast.AST, own: set[str]) -> list[str]:
    found = []
    for node in ast.walk(tree):
        for target in _targets(node):
            if isinstance(target, ast.Subscript):
                target = target.value  # slots[key] = ... writes the table
            if isinstance(target, ast.Attribute) and target.attr in BOOKS | SLOT_BOOKS:
                is_self = isinstance(target.value, ast.Name) and target.value.id == "self"
                if not (is_self and target.attr in own):
                    found.append(f"line {node.lineno}: writes .{target.attr}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in MUTATORS
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr in {"idle", "slots", "waiters"}
        ):
            found.append(f"line {node.lineno}: .{node.func.value.attr}.{node.func.attr}()")
    return found


def test_only_the_ledger_writes_the_books() -> None:
    offences = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_ledger.py" and path.parent == PACKAGE:
            continue
        own = OWN_STATE.get(path.name, set())
        found = _writes(ast.parse(path.read_text()), own)
        if found:
            offences[str(path.relative_to(PACKAGE))] = found
    assert not offences, offences


def test_the_ownership_check_catches_a_write() -> None:
    """The checker itself: a write outside the ledger is reported."""
    bad = ast.parse("def f(pool):\n    pool._ledger.size += 1\n    pool._ledger.idle.pop()\n")
    assert len(_writes(bad, set())) == 2


@pytest.mark.parametrize(
    "module", ["_pool", "_opener", "_closer", "_checker", "_returner", "_maintenance"]
)
def test_workers_inherit_no_pool_state(module: str) -> None:
    """No worker or pool class has a base class of the package's own (composition only)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases]
            assert all(b in ("Exception",) for b in bases), (node.name, bases)
