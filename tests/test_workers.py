"""Worker pools: ordered results, bounded look-ahead, processes that get their context once, prefetch."""

from __future__ import annotations

import threading
import time

import pytest

from pixelforge.data.workers import default_workers, make_executor, ordered_map, prefetch
from pixelforge.errors import ParameterError


def _scaled(factor, offset, item):
    time.sleep(0.002 * (item % 3))  # finish out of order
    return item * factor + offset


@pytest.mark.parametrize(("kind", "workers"), [("thread", 1), ("thread", 3), ("process", 2)])
def test_ordered_map_keeps_item_order_with_the_context_first(kind, workers):
    out = list(ordered_map(_scaled, range(20), workers=workers, kind=kind, context=(10, 1)))
    assert out == [i * 10 + 1 for i in range(20)]


def test_ordered_map_keeps_at_most_ahead_items_in_flight():
    submitted = []

    def items():
        for i in range(50):
            submitted.append(i)
            yield i

    results = ordered_map(lambda i: i, items(), workers=2, ahead=5)
    for got in results:
        assert len(submitted) <= got + 1 + 5  # yielded got+1 items, at most 5 beyond them
    assert len(submitted) == 50


def test_one_worker_runs_inline_and_errors_reach_the_caller():
    caller = threading.get_ident()
    assert list(ordered_map(lambda i: threading.get_ident(), range(3), workers=1)) == [caller] * 3

    def boom(i):
        if i == 2:
            raise ValueError("item 2")
        return i

    with pytest.raises(ValueError, match="item 2"):
        list(ordered_map(boom, range(10), workers=2))


def test_worker_count_and_kind_are_checked():
    assert 1 <= default_workers(cap=3) <= 3
    with pytest.raises(ParameterError, match="worker kind"):
        make_executor("gpu", 2)


def test_prefetch_runs_ahead_hands_over_errors_and_stops_with_the_consumer():
    assert list(prefetch(iter(range(7)))) == list(range(7))

    def failing():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(prefetch(failing()))

    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    stream = prefetch(endless(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()  # the consumer stops early: the producer thread ends and closes its source
    assert closed.wait(5)
