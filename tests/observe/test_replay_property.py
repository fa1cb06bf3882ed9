"""Property: a decision-log line carries enough to replay its decision under the same revision."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from observe_helpers import REPO, fixed_clock

from policyd import Engine
from policyd.diff import Side, replays, view

BUNDLE = REPO / "policies"

ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
requests = st.fixed_dictionaries(
    {
        "tenant": st.fixed_dictionaries(
            {"id": ident, "tier": st.sampled_from(["free", "pro", "enterprise"])}
        ),
        "user": st.fixed_dictionaries({"id": ident}),
        "tags": st.lists(st.sampled_from(["code", "billing"]), max_size=2, unique=True),
        "feature": st.sampled_from(["faq", "chat", "account"]),
        "temperature": st.sampled_from([0.0, 0.7]),
        "messages": st.lists(
            st.fixed_dictionaries(
                {
                    "role": st.sampled_from(["user", "assistant", "system"]),
                    "content": st.text(alphabet="abc xyz.", max_size=300),
                }
            ),
            min_size=1,
            max_size=4,
        ),
    },
    optional={"input_tokens": st.integers(0, 200_000)},
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(requests, min_size=1, max_size=5))
def test_replaying_a_logged_decision_gives_the_same_decision(batch: list[dict[str, Any]]):
    lines: list[dict[str, Any]] = []
    with Engine.from_path(BUNDLE, clock=fixed_clock, decision_log=lines.append) as engine:
        live = [engine.decide(r, policy="support-bot") for r in batch]
        assert engine._observer.log.flush()
    side = Side(str(BUNDLE), "same", fixed_clock())
    items = replays(enumerate(lines, 1))
    assert len(items) == len(live)
    for item, decision in zip(items, live, strict=True):
        assert item.now == fixed_clock() and item.id == decision.id
        replayed, _ = side.decide(side.bundle.policy(item.policy), item, item.now)
        assert view(replayed) == view(decision)
