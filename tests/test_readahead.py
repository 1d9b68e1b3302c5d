"""audio/readahead.py: files read on several threads, consumed in order, memory bounded, errors in place."""

from __future__ import annotations

import threading
import time

import pytest

from batchscribe.audio.readahead import read_ahead

WAIT = 10.0


def test_items_come_in_source_order_even_when_later_sources_are_read_first():
    first_may_go = threading.Event()

    def read(name: str):
        if name == "a":
            assert first_may_go.wait(WAIT)
        for n in range(3):
            yield f"{name}{n}"
        if name == "c":
            first_may_go.set()  # c (read at the same time as a) finished before a started

    got = [(name, list(items)) for name, items in read_ahead(["a", "b", "c"], read, workers=3)]
    assert got == [("a", ["a0", "a1", "a2"]), ("b", ["b0", "b1", "b2"]), ("c", ["c0", "c1", "c2"])]


def test_at_most_workers_sources_are_read_at_once_and_each_waits_on_a_full_queue():
    open_now, most = [0], [0]
    lock = threading.Lock()
    produced: dict[str, int] = {}

    def read(name: str):
        with lock:
            open_now[0] += 1
            most[0] = max(most[0], open_now[0])
        try:
            for n in range(50):
                produced[name] = n + 1
                yield n
        finally:
            with lock:
                open_now[0] -= 1

    files = read_ahead([f"f{n}" for n in range(6)], read, workers=2, depth=4)
    name, items = next(files)
    time.sleep(0.5)  # the readers run ahead as far as their queues let them
    assert produced[name] <= 4 + 1  # the queue's depth, plus the item waiting to go in
    assert len(produced) <= 2
    assert sum(items) == sum(range(50))
    rest = [sum(items) for _, items in files]
    assert rest == [sum(range(50))] * 5
    assert most[0] <= 2


def test_an_error_is_raised_at_its_point_of_its_source_and_the_next_sources_go_on():
    def read(name: str):
        yield 1
        if name == "bad":
            raise ValueError("not audio")
        yield 2

    seen = []
    for name, items in read_ahead(["ok", "bad", "also"], read, workers=2):
        try:
            seen.append((name, [item for item in items]))
        except ValueError as error:
            seen.append((name, str(error)))
    assert seen == [("ok", [1, 2]), ("bad", "not audio"), ("also", [1, 2])]


def test_a_source_left_half_read_and_a_closed_generator_stop_their_readers():
    stopped = []

    def read(name: str):
        try:
            for n in range(10_000):
                yield n
        finally:
            stopped.append(name)

    files = read_ahead(["a", "b", "c"], read, workers=2, depth=2)
    _, items = next(files)
    assert next(items) == 0  # leave a almost unread
    next(files)  # moving on abandons a
    files.close()  # closing abandons b
    deadline = time.monotonic() + WAIT
    while len(stopped) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(stopped) == ["a", "b"]  # c was never started


def test_workers_must_be_at_least_one():
    with pytest.raises(ValueError):
        next(read_ahead(["a"], lambda name: [name], workers=0))
