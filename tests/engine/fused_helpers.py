"""Running a policy's generated decide function and its steps side by side (policyd.fused).

:class:`Setup` compiles a bundle on a fixed clock; :meth:`Setup.both` decides one request
through the generated function and through the steps and asserts the two decisions are
the same in every observable way (fields, trace and its texts, ``to_dict()`` and its key
order, the explain rows, the prepared and redacted messages), or that both refuse the
request with the same words and field.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policyd import RequestError
from policyd.bundle import load_bundle
from policyd.compile import CompiledBundle, CompiledPolicy, compile_bundle
from policyd.deciding import decide
from policyd.decision import Decision
from policyd.explain import explain_rows
from policyd.request import TokenCounter
from policyd.stages.base import Runtime
from policyd.stores.memory import MemoryStore

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def compiled_bundle(path: Path, clock: Callable[[], datetime]) -> tuple[CompiledBundle, Runtime]:
    runtime = Runtime(clock, MemoryStore())
    return compile_bundle(load_bundle(path), runtime, token_counter=TokenCounter()), runtime


def _outcome(make: Callable[[], Decision]) -> Any:
    try:
        return make()
    except RequestError as exc:
        return ("refused", str(exc), exc.field)


def _assert_same(fused: Any, steps: Any, compiled: CompiledPolicy, document: Any) -> None:
    if isinstance(fused, tuple) or isinstance(steps, tuple):
        assert fused == steps
        return
    assert len(fused.id) == len(steps.id) == 32 and fused.id != steps.id
    assert dataclasses.replace(fused, id="") == dataclasses.replace(steps, id="")
    assert fused.trace == steps.trace
    ours, theirs = fused.to_dict(), steps.to_dict()
    assert ours == theirs
    assert json.dumps(ours) == json.dumps(theirs)  # the same key order too
    assert explain_rows(document, ours["trace"]) == explain_rows(document, theirs["trace"])
    assert fused.request == steps.request and fused.messages == steps.messages
    assert fused.revision is steps.revision is compiled
    assert (fused.token_counter, fused.redacted) == (steps.token_counter, steps.redacted)


class Setup:
    """A bundle compiled on a fixed clock, its runtime, and each policy's document."""

    def __init__(self, path: Path, now: datetime = NOW) -> None:
        self.compiled, self.runtime = compiled_bundle(path, lambda: now)
        self.documents = {n: ctx.policy for n, ctx in self.compiled.source.policies.items()}

    def both(self, name: str, request: Any, seed: int) -> None:
        """The generated function and the steps on ``request``: the same decision."""
        compiled = self.compiled.policies[name]
        counter = TokenCounter()
        fused = compiled.fused
        assert fused is not None
        before = copy.deepcopy(request)
        random.seed(seed)  # a weighted tier with neither sticky key nor request id: random
        ours = _outcome(lambda: fused(request, counter.name)[0])
        random.seed(seed)
        theirs = _outcome(lambda: decide(compiled, self.runtime, counter, request))
        _assert_same(ours, theirs, compiled, self.documents[name])
        assert request == before  # neither wrote into the caller's request (a redaction)


_SETUPS: dict[tuple[str, datetime], Setup] = {}


def setup_of(path: Path, now: datetime = NOW) -> Setup:
    key = (str(path), now)
    if key not in _SETUPS:
        _SETUPS[key] = Setup(path, now)
    return _SETUPS[key]
