"""Flows: one core for code that does I/O, driven either blocking or awaited.

A *flow* is a generator that does all of a step's work except its I/O: where it
needs a store call or a plugin call it yields an :class:`Io` naming both forms of
the call, and gets the result back from the ``yield``. :func:`drive` performs each
``Io`` blocking (``decide``, ``record``); :func:`adrive` awaits it (``adecide``,
``arecord``). So the logic around the I/O is written once and a fix lands once
(httpx drives its auth flows the same way). An exception raised by the call is
thrown into the flow at its ``yield``, so ``try``/``except`` around a ``yield``
works as it would around the call. That includes ``BaseException``s: a task
cancelled while ``adrive`` awaits a call gets its ``CancelledError`` at the
``yield``, so a flow can undo what the call may have done, and its ``finally``
blocks run then, not whenever the abandoned generator is collected.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")


class Io(NamedTuple):
    """One call a flow needs made: ``call(*args)`` blocking, ``acall(*args)`` awaited.

    A named tuple rather than a frozen dataclass: as immutable, and made in less than
    half the time (one per store round trip, on the decision path)."""

    call: Callable[..., Any]
    acall: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...] = ()


#: A flow returning ``T``: yields each :class:`Io`, receives its result.
Flow = Generator[Io, Any, T]


def drive(flow: Flow[T]) -> T:
    """Run ``flow`` to its end, making each call it yields blocking; return its value."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            io = flow.send(send) if error is None else flow.throw(error)
        except StopIteration as done:
            return done.value
        try:
            send, error = io.call(*io.args), None
        except BaseException as exc:
            send, error = None, exc


async def adrive(flow: Flow[T]) -> T:
    """Run ``flow`` to its end, awaiting each call it yields; return its value."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            io = flow.send(send) if error is None else flow.throw(error)
        except StopIteration as done:
            return done.value
        try:
            send, error = await io.acall(*io.args), None
        except BaseException as exc:
            send, error = None, exc


class Emit(NamedTuple):
    """Values a stream flow hands to its consumer, in order (chunks of a streamed answer)."""

    values: Sequence[Any]


#: A stream flow: yields each :class:`Io` (performed) and each :class:`Emit` (passed on).
StreamFlow = Generator[Io | Emit, Any, None]


def drive_stream(flow: StreamFlow) -> Generator[Any, None, None]:
    """An iterator of what ``flow`` emits, making each call it yields blocking.

    Closing it (``close()``, or the consumer dropping it) throws ``GeneratorExit`` into
    the flow at its ``Emit``, and the calls the flow then yields (closing its source,
    recording) are still made before the close completes."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            item = flow.send(send) if error is None else flow.throw(error)
        except StopIteration:
            return
        send, error = None, None
        if isinstance(item, Emit):
            try:
                yield from item.values
            except BaseException as exc:  # GeneratorExit: closed by the consumer
                error = exc
            continue
        try:
            send = item.call(*item.args)
        except BaseException as exc:
            error = exc


async def adrive_stream(flow: StreamFlow) -> AsyncGenerator[Any, None]:
    """An async iterator of what ``flow`` emits, awaiting each call it yields (see
    :func:`drive_stream`; ``aclose()`` may await the calls the flow yields then)."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            item = flow.send(send) if error is None else flow.throw(error)
        except StopIteration:
            return
        send, error = None, None
        if isinstance(item, Emit):
            try:
                for value in item.values:
                    yield value
            except BaseException as exc:
                error = exc
            continue
        try:
            send = await item.acall(*item.args)
        except BaseException as exc:
            error = exc
