"""How fast aiopool's fast paths could be with the books compiled by Cython: a floor, not a pool.

``python -m bench.cython_floor`` builds ``floor.pyx`` (Cython, against the
installed asyncmy's declarations) in a temporary directory and times, in
one process against asyncmy's own pool, an uncontended ``acquire()`` +
``release()`` pair of:

- ``FloorPool``: the work aiopool's fast paths do (the loop-and-thread
  check, two clock reads, freshness and end of file, the connection's flags,
  the lent table, the idle stack, the counters) in a Cython class whose
  ``acquire`` and ``release`` are Cython coroutines;
- ``PythonMethods``: the same Cython books behind interpreted ``async def``
  methods, as aiopool's public methods are;
- aiopool's own pool, as installed (the compiled build when
  ``PYTHONPATH=build/compiled``).

It has no slow path, no hand-off, no listeners and no check of the
transport's ``_closing`` flag: it prices the uncontended loan only
(docs/benchmarks.md, "Where the rest of W1 is").
"""
