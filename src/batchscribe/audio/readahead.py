"""Reading several files at once, ahead of the one being consumed, in order.

The audio front end (container demuxing, decoding, resampling, the Silero VAD) runs in PyAV's and
ONNX Runtime's native code, which releases the GIL, so threads read files in parallel. On a CPU
machine the model already uses every core and one reader is right; on a GPU machine the model
needs a core or two and the others read, or the GPU waits on the front end
(`python -m bench frontend` measures how many cores keep a GPU fed).

    for path, items in read_ahead(paths, read=scan, workers=4):
        for item in items:          # what scan(path) yields, in order, as it is read
            ...

Each file's items wait in a bounded queue (`depth` items), so a long file is never held in memory
whole: a reader ahead of the consumer waits once its queue is full. At most `workers` files are
open at once; the earliest unread file is always among them, so the consumer never waits on a
reader that waits on it.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()
_POLL_SECONDS = 0.2  # how often a reader waiting on a full queue checks whether it was abandoned


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


class _Slot:
    """One file's items on their way from its reader to the consumer."""

    def __init__(self, depth: int):
        self.items: queue.Queue = queue.Queue(maxsize=depth)
        self.abandoned = threading.Event()

    def put(self, item: object) -> bool:
        """False once the consumer has moved on (it will never read this)."""
        while not self.abandoned.is_set():
            try:
                self.items.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def fill(self, read: Callable[[T], Iterable[R]], source: T) -> None:
        try:
            for item in read(source):
                if not self.put(item):
                    return
        except BaseException as error:  # raised in the consumer, at this point of the file
            self.put(_Raised(error))
            return
        self.put(_DONE)

    def drain(self) -> Iterator:
        while True:
            item = self.items.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item


def read_ahead(
    sources: Iterable[T], read: Callable[[T], Iterable[R]], workers: int = 1, depth: int = 16
) -> Iterator[tuple[T, Iterator[R]]]:
    """(source, its items) for each source in order, `read(source)` running on up to `workers`
    threads ahead of the consumer. An exception `read` raises is raised by that source's iterator
    when the consumer reaches it. Moving on to the next source, or closing this generator,
    abandons the previous source's reader (it stops at its next item)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    pending = deque(sources)
    slots: deque[tuple[T, _Slot]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batchscribe-read")

    def start_more() -> None:
        while pending and len(slots) < workers:
            source, slot = pending.popleft(), _Slot(depth)
            slots.append((source, slot))
            pool.submit(slot.fill, read, source)

    try:
        start_more()
        while slots:
            source, slot = slots[0]
            try:
                yield source, slot.drain()
            finally:
                slot.abandoned.set()
                slots.popleft()
            start_more()
    finally:
        for _, slot in slots:
            slot.abandoned.set()
        pool.shutdown(wait=False, cancel_futures=True)
