"""Streamed answers of :class:`~policyd.integrations.litellm.PolicyRouter`.

A stream is wrapped so that its call is recorded exactly once — when it ends,
fails or is closed early — with the usage LiteLLM reports on its last chunk.
When the policy has output guardrails, the answer is buffered and checked
whole before the first chunk is released (a guardrail such as ``json_schema``
can only judge the complete text); a redaction replaces each choice's text in
its first content chunk. Without output guardrails chunks pass straight through.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import Any

from policyd.decision import Decision
from policyd.integrations._litellm_support import CallInfo, OutputBlockedError, hidden_params
from policyd.stages.output import OutputVerdict

# Called once when the stream is over: (what it saw, its error or None) -> CallInfo, recorded
Settle = Callable[["StreamState", BaseException | None], CallInfo]
ASettle = Callable[["StreamState", BaseException | None], Coroutine[Any, Any, CallInfo]]
EMPTY = object()  # the peeked first chunk of a stream that had none


class StreamState:
    """Usage and per-choice text of one stream, plus its chunks when buffering."""

    def __init__(self, buffered: bool) -> None:
        self.buffered = buffered
        self.chunks: list[Any] = []
        self.texts: dict[int, list[str]] = {}
        self.usage: Any = None
        self.verdicts: tuple[OutputVerdict, ...] = ()

    def see(self, chunk: Any) -> None:
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
        if not self.buffered:
            return
        self.chunks.append(chunk)
        for choice in getattr(chunk, "choices", None) or ():
            content = getattr(getattr(choice, "delta", None), "content", None)
            if isinstance(content, str) and content:
                self.texts.setdefault(getattr(choice, "index", 0) or 0, []).append(content)

    def check(self, engine: Any, decision: Decision) -> OutputVerdict | None:
        """Check each choice's whole text; rewrite chunks where a guardrail redacted."""
        verdicts = []
        blocking = None
        replace: dict[int, str] = {}
        for index, parts in sorted(self.texts.items()):
            text = "".join(parts)
            verdict = engine.check_output(decision, text)
            verdicts.append(verdict)
            if not verdict.allowed:
                blocking = blocking or verdict
            elif verdict.text != text:
                replace[index] = verdict.text
        self.verdicts = tuple(verdicts)
        if replace and blocking is None:
            self._rewrite(replace)
        return blocking

    def _rewrite(self, replace: dict[int, str]) -> None:
        placed: set[int] = set()
        for chunk in self.chunks:
            for choice in getattr(chunk, "choices", None) or ():
                index = getattr(choice, "index", 0) or 0
                delta = getattr(choice, "delta", None)
                if delta is None or index not in replace or not getattr(delta, "content", None):
                    continue
                delta.content = None if index in placed else replace[index]
                placed.add(index)


class AsyncPolicyStream:
    """An async iterator of LiteLLM stream chunks that records its call when done.

    ``decision`` and ``model`` are known from the start; ``info`` (a
    :class:`CallInfo`) once the stream has ended. Iterate it to the end or call
    :meth:`aclose`, so that the spend is recorded.
    """

    def __init__(
        self,
        decision: Decision,
        model: str,
        source: Any,
        first: Any,
        state: StreamState,
        engine: Any,
        settle: ASettle,
    ) -> None:
        self.decision = decision
        self.model = model
        self.info: CallInfo | None = None
        self._hidden_params = hidden_params(source)
        self._source = source
        self._gen = self._run(first, state, engine, settle)

    def __aiter__(self) -> AsyncPolicyStream:
        return self

    async def __anext__(self) -> Any:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()

    async def _run(
        self, first: Any, state: StreamState, engine: Any, settle: ASettle
    ) -> AsyncGenerator[Any, None]:
        settled = False
        try:
            if first is not EMPTY:
                state.see(first)
                if not state.buffered:
                    yield first
            async for chunk in self._source:
                state.see(chunk)
                if not state.buffered:
                    yield chunk
            if state.buffered:
                blocking = state.check(engine, self.decision)
                settled = True
                self.info = await settle(state, None)
                if blocking is not None:
                    raise OutputBlockedError(self.decision, blocking, self.info)
                for chunk in state.chunks:
                    yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            if not settled:
                settled = True
                self.info = await settle(state, exc)
            raise
        finally:
            if not settled:
                self.info = await settle(state, None)


class PolicyStream:
    """The synchronous twin of :class:`AsyncPolicyStream`; call :meth:`close` if you stop early."""

    def __init__(
        self,
        decision: Decision,
        model: str,
        source: Any,
        first: Any,
        state: StreamState,
        engine: Any,
        settle: Settle,
    ) -> None:
        self.decision = decision
        self.model = model
        self.info: CallInfo | None = None
        self._hidden_params = hidden_params(source)
        self._source = source
        self._gen = self._run(first, state, engine, settle)

    def __iter__(self) -> PolicyStream:
        return self

    def __next__(self) -> Any:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def _run(
        self, first: Any, state: StreamState, engine: Any, settle: Settle
    ) -> Generator[Any, None, None]:
        settled = False
        try:
            if first is not EMPTY:
                state.see(first)
                if not state.buffered:
                    yield first
            for chunk in self._source:
                state.see(chunk)
                if not state.buffered:
                    yield chunk
            if state.buffered:
                blocking = state.check(engine, self.decision)
                settled = True
                self.info = settle(state, None)
                if blocking is not None:
                    raise OutputBlockedError(self.decision, blocking, self.info)
                yield from state.chunks
        except GeneratorExit:
            raise
        except BaseException as exc:
            if not settled:
                settled = True
                self.info = settle(state, exc)
            raise
        finally:
            if not settled:
                self.info = settle(state, None)
