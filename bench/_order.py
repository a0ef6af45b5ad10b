"""The order in which contenders take their turns, round after round.

A plain rotation (round ``r`` starts at contender ``r``) moves every contender
through every position, but keeps the neighbours fixed: each contender always
runs right after the same one.  Whatever one pool leaves behind on the machine
(server sessions still closing, a warmer or colder cache, a loop with more
callbacks behind it) then always falls on the same next pool.

``turn_order`` uses a Williams design instead, a Latin square in which every
contender also follows every other one equally often: over ``n`` rounds for
an even number ``n`` of contenders, over ``2n`` for an odd one.  Each round
is a rotation of one fixed row (for an odd ``n``, every other ``n`` rounds, of
its mirror image), so every contender still takes every place equally often.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["period", "turn_order"]

T = TypeVar("T")


def _first_row(n: int) -> list[int]:
    # 0, 1, n-1, 2, n-2, ...: the steps between neighbours are 1, -2, 3, -4, ...,
    # which for an even n are all different modulo n, so the n shifts of the
    # row put each ordered pair side by side once.
    row = [0]
    low, high = 1, n - 1
    while low <= high:
        row.append(low)
        low += 1
        if low <= high:
            row.append(high)
            high -= 1
    return row


def period(n: int) -> int:
    """Rounds after which every contender has followed every other one equally often."""
    return n if n % 2 == 0 else 2 * n


def turn_order(items: Sequence[T], rnd: int) -> list[T]:
    """``items`` in the order they take their turns in round ``rnd`` (from 0)."""
    n = len(items)
    if n < 2:
        return list(items)
    shift = rnd % n
    row = [items[(i + shift) % n] for i in _first_row(n)]
    if n % 2 and (rnd // n) % 2:
        # Odd n: one square leaves each ordered pair either once or never;
        # its mirror image supplies the other direction.
        row.reverse()
    return row
