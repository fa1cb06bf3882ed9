"""A bounded queue drained by one daemon thread: what the decision log and shadow share.

``_put`` never blocks the request path: when the queue is full (or closed) the item is
dropped and counted in :attr:`dropped`. ``flush`` waits until everything queued so far
is handled; ``close`` drains the queue and stops the thread. A subclass handles each
item in ``_handle`` as it leaves the queue (so ``capacity`` bounds what is in flight),
finishes a batch in ``_batch_done`` and releases its resources in ``_stopped``.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

_FLUSH = "flush"
_STOP = "stop"


class BoundedWorker:
    """Call ``__init__`` last in the subclass's own: it starts the thread."""

    def __init__(self, name: str, capacity: int) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._wake = threading.Event()
        self._idle = False
        self._drop_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: tuple[Any, ...]) -> None:
        if len(self._queue) >= self.capacity or self._closed:
            with self._drop_lock:
                self.dropped += 1
            return
        self._queue.append(item)
        if self._idle:
            self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every item queued so far is handled; False on timeout."""
        done = threading.Event()
        self._queue.append((_FLUSH, done))
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Handle what is queued, then stop the thread."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._queue.append((_STOP,))
        self._wake.set()
        self._thread.join(timeout)

    def _handle(self, item: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def _batch_done(self) -> None:
        """Called on the worker thread after the items the queue held at one wake-up."""

    def _stopped(self) -> None:
        """Called on the worker thread once, after the last batch."""

    def _run(self) -> None:
        queue = self._queue
        while True:
            flush: threading.Event | None = None
            stop = False
            while queue:
                item = queue.popleft()
                if item[0] == _FLUSH:
                    flush = item[1]
                    break
                if item[0] == _STOP:
                    stop = True
                    break
                self._handle(item)
            self._batch_done()
            if flush is not None:
                flush.set()
            if stop:
                self._stopped()
                return
            if not queue:
                self._idle = True
                self._wake.wait(0.25)
                self._wake.clear()
                self._idle = False
