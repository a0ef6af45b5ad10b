"""The bench's turn order (bench/_order.py): a balanced Latin square.

A plain rotation lets every contender take every place but always behind the
same neighbour; these tests fail for it (checked) and pass for a Williams
design.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from bench._order import period, turn_order


@pytest.mark.parametrize("n", range(1, 11))
def test_every_round_is_a_permutation(n: int) -> None:
    items = [f"c{i}" for i in range(n)]
    for rnd in range(3 * period(n)):
        assert sorted(turn_order(items, rnd)) == sorted(items)


@pytest.mark.parametrize("n", range(2, 11))
def test_each_contender_follows_each_other_equally_often(n: int) -> None:
    followers: Counter[tuple[int, int]] = Counter()
    for rnd in range(period(n)):
        row = turn_order(list(range(n)), rnd)
        followers.update(itertools.pairwise(row))
    assert set(followers) == {(a, b) for a in range(n) for b in range(n) if a != b}
    assert len(set(followers.values())) == 1


@pytest.mark.parametrize("n", range(1, 11))
def test_each_contender_takes_each_place_equally_often(n: int) -> None:
    places: Counter[tuple[int, int]] = Counter()
    for rnd in range(period(n)):
        places.update(enumerate(turn_order(list(range(n)), rnd)))
    assert len(places) == n * n
    assert len(set(places.values())) == 1


def test_the_first_round_keeps_the_first_contender_first() -> None:
    # Round 0 starts where a one-round run (--rounds 1) always did.
    assert turn_order(["aiopool", "asyncmy", "floor"], 0)[0] == "aiopool"
    assert turn_order(["a", "b", "c", "d"], 1)[0] == "b"


def test_the_order_repeats_after_its_period() -> None:
    items = list("abcdefg")
    for rnd in range(period(len(items))):
        assert turn_order(items, rnd) == turn_order(items, rnd + period(len(items)))
