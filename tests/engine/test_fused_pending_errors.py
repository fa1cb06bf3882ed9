"""A CEL error waiting in an unread trace (policyd.fused_runtime.Err) holds no frame.

On the generated path a failed condition's exception is kept, unrendered, until the trace
is read, which for most decisions is never. A traceback, or the traceback of the
exception it was raised from or while handling (``raise ... from None`` still records the
context), holds the frames of the decision, and through them the request: a decision kept
in a cache or a log would keep every request value alive. Each kept exception must carry
only what its text needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from engine_bundles import CATALOG, policy
from fused_helpers import Setup

from policyd.decision import Decision, PendingTrace
from policyd.fused_runtime import Err, Later

# Conditions failing in each way the generated function keeps an error: inlined code
# raising (a missing key, a bad conversion, division by zero), an absorbing ``||`` whose
# operands both fail, a called function (a macro) raising from inside its own handler.
BODY = """
tiers:
  one: {strategy: ordered, targets: [{model: huge}]}
routing:
  default: one
  rules:
    - {name: missing, when: 'request.user.id == "x"', tier: one}
    - {name: convert, when: 'int(request.feature) > 3', tier: one}
    - {name: divide, when: '10 / size(request.tags) > 1', tier: one}
    - {name: either, when: 'request.user.id == "a" || request.tenant.tier == "b"', tier: one}
    - {name: macro, when: '[request.feature].exists(t, t == request.user.id)', tier: one}
    - {name: macro-convert, when: '[request.feature].exists(t, int(t) > 1)', tier: one}
guardrails:
  input:
    - {name: guarded, when: 'request.user.id.startsWith("x")', action: block, on_error: allow}
"""


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    (tmp_path / "models.yaml").write_text(CATALOG)
    (tmp_path / "p.yaml").write_text(policy(BODY, name="errs"))
    return Setup(tmp_path)


def _chain(exc: BaseException | None) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _pending_errors(decision: Decision) -> list[BaseException]:
    raw = Decision.__dict__["trace"].slot.__get__(decision)  # the stored value, unread
    assert isinstance(raw, PendingTrace)
    items: list[Any] = list(raw.items)
    return [item[1][0] for item in items if item.__class__ is Later and item[1].__class__ is Err]


def test_a_pending_error_holds_no_frame(setup: Setup) -> None:
    request = {
        "messages": [{"role": "user", "content": "hi"}],
        "tenant": {"id": "t1", "tier": "pro"},
        "feature": "jane@example.com",
        "tags": [],
    }
    setup.both("errs", request, 0)  # and the generated function decides as the steps do
    fused = setup.compiled.policy("errs").fused
    assert fused is not None
    decision = fused(request, "estimate")[0]
    errors = _pending_errors(decision)
    assert len(errors) == 7  # one per failed condition, all still unrendered
    for exc in errors:
        assert exc.__traceback__ is None
        assert exc.__context__ is None and exc.__cause__ is None
    details = [t.detail for t in decision.trace if t.outcome in ("error", "error-allowed")]
    assert len(details) == 7
    assert not any("jane@example.com" in d for d in details)
