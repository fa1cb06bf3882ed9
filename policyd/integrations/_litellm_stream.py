"""Streamed answers of :class:`~policyd.integrations.litellm.PolicyRouter` and the proxy hook.

:class:`StreamState` notes a stream's usage and, when the policy has output guardrails,
checks each choice's text as it streams with its own ``engine.output_checker``. A chunk
is passed on carrying only the text the checker released so far — redacted where a
guardrail redacts — as a copy of the upstream chunk whenever that text differs from what
came in; a chunk whose text is all held back (and that carries nothing else) is skipped,
its role moving to the choice's next chunk. The held-back tail is released in the chunk
carrying the choice's ``finish_reason`` (or, for a stream that ends without one, in an
extra chunk before the usage chunk). A block raises :class:`Blocked` in the step where
the violation becomes visible; the blocked text is never passed on. Without output
guardrails chunks pass through untouched.

:class:`AsyncPolicyStream`/:class:`PolicyStream` wrap a LiteLLM stream with that state and
record the call exactly once: when the stream ends, fails, is blocked or is closed early
(the upstream stream is then closed too). Both run one stream flow
(:mod:`policyd.stages.flow`), which yields its I/O (the next chunk, plugins, closing the
upstream, recording) and the chunks to pass on; only the driver differs.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

from policyd.decision import Decision
from policyd.integrations._litellm_support import CallInfo, OutputBlockedError, hidden_params
from policyd.stages.flow import (
    Emit,
    Flow,
    Io,
    StreamFlow,
    adrive,
    adrive_stream,
    drive,
    drive_stream,
)
from policyd.stages.output import OutputChecker
from policyd.verdict import OutputStep, OutputVerdict

# Called once when the stream is over: (what it saw, its error or None) -> a flow that
# records the call and returns its CallInfo
Settle = Callable[["StreamState", BaseException | None], Flow[CallInfo]]
EMPTY = object()  # the peeked first chunk of a stream that had none
_TEXT_FIELDS = ("content", "role")
DEFAULT_OVERLAP = 4096  # engine.output_checker's default: longest match caught across chunks
_DRAIN = 8  # chunks read after a blocked answer ended, for its usage (usually one)


class Blocked(Exception):
    """An output guardrail blocked a streamed answer; ``verdict`` says which and why.

    ``finished``: the block came when the (last open) answer ended, so the model has
    stopped generating and the rest of the stream only carries its usage.
    """

    def __init__(self, verdict: OutputVerdict, finished: bool = False) -> None:
        super().__init__(verdict.blocked_by or "output guardrail")
        self.verdict = verdict
        self.finished = finished


class StreamState:
    """What one stream saw (its usage) and, when ``checker`` makes an ``OutputChecker``,
    what each choice's checker has released (see the module docstring).

    Per chunk: ``step(chunk)`` (or ``await astep(chunk)``) gives the chunks to pass on;
    after the last one ``end()``/``await aend()`` gives the tails. Both raise
    :class:`Blocked` when an output guardrail blocks.
    """

    def __init__(self, checker: Callable[[], OutputChecker] | None = None) -> None:
        self.usage: Any = None
        self._new_checker = checker
        self._open: dict[int, OutputChecker] = {}  # choices still streaming
        self._verdicts: list[tuple[int, OutputVerdict]] = []  # choices that ended
        self._released: dict[int, str] = {}  # text released and not passed on yet
        self._roles: dict[int, Any] = {}  # roles of skipped chunks, for the next one passed on
        self._last: dict[int, Any] = {}  # each choice's last chunk with text: the tails' shape
        self._held: Any = None  # a usage chunk kept back until the tails are out
        self._ending: set[int] = set()  # choices that ended in the chunk being stepped

    @property
    def checked(self) -> bool:
        """Whether text goes through output guardrails (else chunks pass straight through)."""
        return self._new_checker is not None

    @property
    def verdicts(self) -> tuple[OutputVerdict, ...]:
        """One verdict per checked choice, by index (their ``text`` is empty: it went out)."""
        pairs = [*self._verdicts, *((i, c.verdict()) for i, c in self._open.items())]
        return tuple(v for _, v in sorted(pairs, key=lambda pair: pair[0]))

    # -- per chunk ------------------------------------------------------------------------

    def step(self, chunk: Any) -> list[Any]:
        """The chunks to pass on in place of ``chunk`` (a plugin judging a choice that ended
        here runs synchronously)."""
        return drive(self.step_flow(chunk))

    async def astep(self, chunk: Any) -> list[Any]:
        """:meth:`step` for async code: plugins are awaited."""
        return await adrive(self.step_flow(chunk))

    def step_flow(self, chunk: Any) -> Flow[list[Any]]:
        """:meth:`step` as a flow (:mod:`policyd.stages.flow`): plugin calls are yielded."""
        for index, checker in self._feed(chunk):
            self._ended(index, (yield from checker.finish_flow()))
        return self._emit(chunk)

    def see(self, chunk: Any) -> None:
        """Note a chunk's usage only (draining a blocked stream)."""
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage

    def end(self) -> list[Any]:
        """The upstream ended: the chunks still to pass on (held-back tails, usage)."""
        return drive(self.end_flow())

    async def aend(self) -> list[Any]:
        """:meth:`end` for async code."""
        return await adrive(self.end_flow())

    def end_flow(self) -> Flow[list[Any]]:
        """:meth:`end` as a flow."""
        for index, checker in list(self._open.items()):
            self._ended(index, (yield from checker.finish_flow()))
        return self._tails()

    # -- internals --------------------------------------------------------------------------

    def _feed(self, chunk: Any) -> list[tuple[int, OutputChecker]]:
        """Note usage and feed each choice's text; the checkers of the choices it ends."""
        self.see(chunk)
        if self._new_checker is None:
            return []
        ending = []
        for choice in _choices(chunk):
            index = _index(choice)
            content = getattr(getattr(choice, "delta", None), "content", None)
            if isinstance(content, str):  # a text answer (a tool call's content is None)
                checker = self._open.get(index)
                if checker is None:
                    checker = self._open[index] = self._new_checker()
                self._last[index] = chunk
                if content:
                    step = checker.feed(content)
                    if not step.allowed:
                        raise Blocked(checker.verdict())
                    self._released[index] = self._released.get(index, "") + step.text
            if getattr(choice, "finish_reason", None) is not None and index in self._open:
                ending.append((index, self._open[index]))
        return ending

    def _ended(self, index: int, step: OutputStep) -> None:
        checker = self._open.pop(index)
        if not step.allowed:
            raise Blocked(checker.verdict(), finished=not self._open)
        self._verdicts.append((index, checker.verdict()))
        self._ending.add(index)
        if step.text:
            self._released[index] = self._released.get(index, "") + step.text

    def _emit(self, chunk: Any) -> list[Any]:
        if self._new_checker is None:
            return [chunk]
        ready = [] if self._held is None else [self._held]
        self._held = None
        ready += self._pre_tails(chunk)
        out = self._rewrite(chunk)
        if out is None:
            return ready
        if self._open and getattr(out, "usage", None) is not None:
            self._held = out  # usage belongs on the last chunk, after any tail
        else:
            ready.append(out)
        return ready

    def _pre_tails(self, chunk: Any) -> list[Any]:
        """The text released when a choice ended in ``chunk``, in chunks of their own before
        it (the ending chunk itself stays as the upstream sent it: finish, no text)."""
        ending, self._ending = self._ending, set()
        out = []
        for index in sorted(ending):
            text = self._released.pop(index, "")
            if text:
                out.append(self._tail(chunk, index, text))
            self._released[index] = ""  # the ending chunk's own text went into the tail
            self._last.pop(index, None)
        return out

    def _tail(self, template: Any, index: int, text: str) -> Any:
        """A chunk shaped like ``template`` carrying only choice ``index``'s ``text``."""
        choice = next(c for c in _choices(template) if _index(c) == index)
        tail = copy.copy(template)
        tail.choices = [_with_text(choice, text, self._roles.pop(index, None), bare=True)]
        if getattr(tail, "usage", None) is not None:
            tail.usage = None
        return tail

    def _rewrite(self, chunk: Any) -> Any:
        """``chunk`` with each choice's released text (a copy if that changes it), or None
        when it carries nothing to pass on."""
        choices = _choices(chunk)
        if not choices:
            return chunk
        plan = []
        news = getattr(chunk, "usage", None) is not None
        for choice in choices:
            index = _index(choice)
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None)
            text = self._released.pop(index, None)
            out = (text or None) if text is not None or isinstance(content, str) else content
            news = news or bool(out) or _carries_more(choice, delta)
            plan.append((choice, index, delta, content, out))
        if not news:
            for _, index, delta, _, _ in plan:
                role = getattr(delta, "role", None)
                if role is not None:
                    self._roles.setdefault(index, role)
            return None
        if all(
            out == content and (index not in self._roles or getattr(delta, "role", None))
            for _, index, delta, content, out in plan
        ):
            for _, index, *_ in plan:
                self._roles.pop(index, None)
            return chunk
        rewritten = copy.copy(chunk)
        rewritten.choices = [
            _with_text(choice, out, self._roles.pop(index, None)) if delta is not None else choice
            for choice, index, delta, _, out in plan
        ]
        return rewritten

    def _tails(self) -> list[Any]:
        self._ending.clear()
        out = []
        for index, text in sorted(self._released.items()):
            template = self._last.get(index)
            if text and template is not None:
                out.append(self._tail(template, index, text))
        self._released.clear()
        if self._held is not None:
            out.append(self._held)
            self._held = None
        return out


def _choices(chunk: Any) -> list[Any]:
    return list(getattr(chunk, "choices", None) or ())


def _index(choice: Any) -> int:
    index = getattr(choice, "index", 0)
    return index if isinstance(index, int) else 0


def _delta_fields(delta: Any) -> dict[str, Any]:
    """A delta's attributes (LiteLLM keeps most of them in pydantic's extra)."""
    fields = dict(getattr(delta, "__dict__", None) or {})
    fields.update(getattr(delta, "__pydantic_extra__", None) or {})
    return fields


def _carries_more(choice: Any, delta: Any) -> bool:
    """Whether a choice carries something besides text and role (finish, tool calls, ...)."""
    if getattr(choice, "finish_reason", None) is not None:
        return True
    return any(
        value is not None and value != "" and value != [] and value != {}
        for name, value in _delta_fields(delta).items()
        if name not in _TEXT_FIELDS
    )


def _with_text(choice: Any, text: str | None, role: Any, bare: bool = False) -> Any:
    """A copy of ``choice`` whose delta has ``text`` (and ``role`` if given); ``bare``
    drops everything else the delta carried (a tail chunk carries only text)."""
    delta = copy.copy(choice.delta)
    if bare:
        for name in _delta_fields(delta):
            if name not in _TEXT_FIELDS:
                setattr(delta, name, None)
        delta.role = role
    elif role is not None and getattr(delta, "role", None) is None:
        delta.role = role
    delta.content = text
    out = copy.copy(choice)
    out.delta = delta
    if bare:
        out.finish_reason = None
    return out


def next_chunk(source: Any) -> Any:
    """The next chunk of a sync LiteLLM stream, or :data:`EMPTY` when it has ended."""
    try:
        return next(iter(source))
    except StopIteration:
        return EMPTY


async def anext_chunk(source: Any) -> Any:
    """The next chunk of an async LiteLLM stream, or :data:`EMPTY` when it has ended."""
    try:
        return await source.__anext__()
    except StopAsyncIteration:
        return EMPTY


def drain_flow(source: Any, state: StreamState) -> Flow[bool]:
    """Read what follows a blocked answer's end (its usage), up to a few chunks; True when
    the stream ended."""
    try:
        for _ in range(_DRAIN):
            chunk = yield Io(next_chunk, anext_chunk, (source,))
            if chunk is EMPTY:
                return True
            state.see(chunk)
    except Exception:  # a failure after the answer ended changes nothing: close it
        return False
    return False


async def adrain(source: Any, state: StreamState) -> bool:
    """:func:`drain_flow` awaited."""
    return await adrive(drain_flow(source, state))


def close_source(source: Any) -> None:
    """Stop a sync LiteLLM stream: its own close(), else its underlying generator's."""
    close = getattr(source, "close", None)
    if not callable(close):
        close = getattr(getattr(source, "completion_stream", None), "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()


async def aclose_source(source: Any) -> None:
    """Stop an async LiteLLM stream (best effort: a failing close changes nothing)."""
    aclose = getattr(source, "aclose", None)
    if callable(aclose):
        with contextlib.suppress(Exception):
            await aclose()


class _Stream:
    """What :class:`PolicyStream` and :class:`AsyncPolicyStream` share: the stream's
    whole life as one flow, :meth:`_flow`, that the sync class drives blocking and the
    async one awaits (:func:`~policyd.stages.flow.drive_stream`)."""

    def __init__(
        self,
        decision: Decision,
        model: str,
        source: Any,
        first: Any,
        state: StreamState,
        settle: Settle,
    ) -> None:
        self.decision = decision
        self.model = model
        self.info: CallInfo | None = None
        self._hidden_params = hidden_params(source)
        self._source = source
        self._first = first
        self._state = state
        self._settle = settle
        self._gen = self._driver(self._flow())

    _driver: Callable[[StreamFlow], Any]  # drive_stream or adrive_stream

    def _flow(self) -> StreamFlow:
        """Pass each chunk on as the state releases it; record the call exactly once: when
        the stream ends, fails, is blocked or is closed early (then stop the upstream)."""
        source, state = self._source, self._state
        pull = Io(next_chunk, anext_chunk, (source,))
        close = Io(close_source, aclose_source, (source,))
        settled = exhausted = False
        try:
            try:
                chunk = self._first
                while chunk is not EMPTY:
                    if state.checked:
                        outs = yield from state.step_flow(chunk)
                    else:  # what step() does unchecked, without a flow per chunk
                        state.see(chunk)
                        outs = [chunk]
                    if outs:
                        yield Emit(outs)
                    chunk = yield pull
                exhausted = True
                outs = yield from state.end_flow()
                if outs:
                    yield Emit(outs)
            except Blocked as blocked:
                if blocked.finished and not exhausted:  # nothing more to pay for: read usage
                    exhausted = yield from drain_flow(source, state)
                if not exhausted:
                    exhausted = True
                    yield close  # stop the model before anything else
                settled = True
                self.info = yield from self._settle(state, None)  # it worked and is paid for
                raise OutputBlockedError(self.decision, blocked.verdict, self.info) from None
        except GeneratorExit:
            raise
        except BaseException as exc:
            if not settled:
                settled = True
                self.info = yield from self._settle(state, exc)
            raise
        finally:
            if not exhausted:  # closed early or failed: stop the upstream too
                yield close
            if not settled:
                self.info = yield from self._settle(state, None)


class AsyncPolicyStream(_Stream):
    """An async iterator of LiteLLM stream chunks that records its call when done.

    ``decision`` and ``model`` are known from the start; ``info`` (a
    :class:`CallInfo`) once the stream has ended. Iterate it to the end or call
    :meth:`aclose`, so that the spend is recorded. Raises :class:`OutputBlockedError`
    as soon as an output guardrail blocks the answer.
    """

    _driver = staticmethod(adrive_stream)

    def __aiter__(self) -> AsyncPolicyStream:
        return self

    async def __anext__(self) -> Any:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()


class PolicyStream(_Stream):
    """The synchronous twin of :class:`AsyncPolicyStream`; call :meth:`close` if you stop early."""

    _driver = staticmethod(drive_stream)

    def __iter__(self) -> PolicyStream:
        return self

    def __next__(self) -> Any:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()
