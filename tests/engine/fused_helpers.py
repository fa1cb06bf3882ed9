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
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policyd import RequestError
from policyd.bundle import Bundle, load_bundle
from policyd.compile import CompiledBundle, CompiledPolicy, compile_bundle
from policyd.deciding import decide
from policyd.decision import Decision
from policyd.explain import explain_rows
from policyd.request import TokenCounter
from policyd.stages.base import Runtime
from policyd.stores.memory import MemoryStore

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def compiled_bundle(
    path: Path, clock: Callable[[], datetime], bundle: Bundle | None = None
) -> tuple[CompiledBundle, Runtime]:
    """The bundle at ``path`` (or ``bundle``, already loaded from it) compiled on ``clock``."""
    runtime = Runtime(clock, MemoryStore())
    loaded = load_bundle(path) if bundle is None else bundle
    return compile_bundle(loaded, runtime, token_counter=TokenCounter()), runtime


def outcome(make: Callable[[], Decision]) -> Any:
    """The decision ``make`` returns, or ("refused", words, field) when it refuses."""
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


def unchanged(value: Any, copied: Any) -> bool:
    """``value`` is its deep copy ``copied``: the same classes, keys in the same order and
    equal items, a NaN equal to the NaN it was copied to (a copied float subclass is
    another object, so ``==`` on the containers would tell them apart)."""
    if value.__class__ is not copied.__class__:
        return False
    if isinstance(value, float) and value != value:
        return copied != copied
    if isinstance(value, Mapping):
        return list(value) == list(copied) and all(unchanged(value[k], copied[k]) for k in value)
    if isinstance(value, list | tuple):
        return len(value) == len(copied) and all(map(unchanged, value, copied))
    return bool(value == copied)


class Setup:
    """A bundle compiled on a fixed clock, its runtime, and each policy's document."""

    def __init__(self, path: Path, now: datetime = NOW, bundle: Bundle | None = None) -> None:
        self.compiled, self.runtime = compiled_bundle(path, lambda: now, bundle)
        self.documents = {n: ctx.policy for n, ctx in self.compiled.source.policies.items()}

    def both(self, name: str, request: Any, seed: int) -> None:
        """The generated function and the steps on ``request``: the same decision."""
        compiled = self.compiled.policies[name]
        counter = TokenCounter()
        fused = compiled.fused
        assert fused is not None
        before = copy.deepcopy(request)
        random.seed(seed)  # a weighted tier with neither sticky key nor request id: random
        ours = outcome(lambda: fused(request, counter.name)[0])
        random.seed(seed)
        theirs = outcome(lambda: decide(compiled, self.runtime, counter, request))
        _assert_same(ours, theirs, compiled, self.documents[name])
        assert unchanged(request, before)  # neither wrote into the caller's request (a redaction)


_SETUPS: dict[tuple[str, datetime], Setup] = {}


def setup_of(path: Path, now: datetime = NOW) -> Setup:
    key = (str(path), now)
    if key not in _SETUPS:
        _SETUPS[key] = Setup(path, now)
    return _SETUPS[key]


def no_shouting(text: str, request: Any) -> bool:
    """A plugin guardrail for generated policies: an all-capitals text is not allowed."""
    return not (text.isupper() and len(text) > 3)
