"""The fair floor: the least a first-come-first-served pool must do, as a bench contender.

``pools.pyx`` holds ``FifoPool``, compiled by Cython on first use (as
asyncmy's own pool is compiled): a stack of idle connections and a line of
waiting futures. A returned connection goes to the oldest waiter still
waiting, a waiter cancelled after it was handed one passes it on, and
nothing else is done: no timeout, no health check, no transaction check, no
statistics, no limit on the line, no growth. It is not a pool to use; it
is a yardstick. Measured beside aiopool and asyncmy's pool in W3-W5 (the
``fair-floor`` contender), it tells apart what serving tasks in order costs
(the floor's own ratio to asyncmy's pool, which lets the releasing task
keep its connection) from what aiopool's own work costs (aiopool ÷ the floor).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import ModuleType

__all__ = ["load"]

HERE = Path(__file__).resolve().parent
_built: ModuleType | None = None


def load() -> ModuleType:
    """The compiled ``pools`` module, built once per process, by a child process."""
    global _built
    if _built is None:
        from .._cython import load_built

        # The directory may go once the module is loaded: the extension is mapped.
        with tempfile.TemporaryDirectory(prefix="fair-floor-") as tmp:
            _built = load_built(HERE / "pools.pyx", "pools", Path(tmp))
    return _built
