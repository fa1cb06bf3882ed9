"""Decision ids: 32 random hex digits (128 bits from ``os.urandom``), never shared.

An id names a decision in the decision log, in telemetry, in the LiteLLM proxy's
bookkeeping of calls in flight and, as its reservation's name, in a shared budget
store; so it must be unique across processes and unguessable, as ``os.urandom(16)``
per decision makes it. A system call per decision is the cost of that; here one call
draws the random bytes of :data:`BATCH` ids, kept in a deque the decisions take them
from. The ids are exactly as random as before. A forked child drops the ids its parent
drew (``os.register_at_fork``), so parent and child never hand out the same one.
"""

from __future__ import annotations

import collections
import os

#: Ids drawn per ``os.urandom`` call.
BATCH = 128

_ids: collections.deque[str] = collections.deque()


def _draw() -> None:
    text = os.urandom(16 * BATCH).hex()
    _ids.extend([text[i : i + 32] for i in range(0, 32 * BATCH, 32)])


def _forget() -> None:
    _ids.clear()


os.register_at_fork(after_in_child=_forget)


def new_decision_id() -> str:
    """A fresh id: 32 lowercase hex digits, as ``os.urandom(16).hex()`` gives.

    Thread-safe: ``popleft`` and ``extend`` are atomic, and two threads finding the
    deque empty at once both refill it (more fresh ids, never a repeated one).
    """
    try:
        return _ids.popleft()
    except IndexError:
        _draw()
        return _ids.popleft()
