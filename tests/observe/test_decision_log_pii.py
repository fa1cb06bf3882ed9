"""No PII or secret of the guardrail corpus reaches a decision log line, wherever it was."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from observe_helpers import REPO, fixed_clock, request

from policyd import Engine

sys.path.insert(0, str(REPO / "tests" / "guardrails"))
from guardrail_corpus import PII_POSITIVES, SECRET_POSITIVES

VALUES = [value for _, value in PII_POSITIVES + SECRET_POSITIVES]


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def test_no_corpus_value_appears_in_any_log_line(bundle: Path, tmp_path: Path):
    policy = bundle / "support-bot.yaml"
    # log every attribute, including the free-form metadata map
    policy.write_text(
        policy.read_text()
        + "\nlog:\n  request: [tenant.id, tenant.tier, user.id, user.country, feature, tags, "
        "metadata, model]\n"
    )
    path = tmp_path / "d.jsonl"
    with Engine.from_path(bundle, clock=fixed_clock, decision_log=path) as engine:
        for value in VALUES:
            req = request(
                tenant={"id": value, "tier": "pro"},
                user={"id": f"user {value}", "country": value},
                feature=value,
                tags=[value, "code"],
                metadata={"note": f"from {value}", value: 1, "n": 4111111111111111},
                model=value,
                messages=[{"role": "user", "content": f"hello, I am {value} ok"}],
            )
            decision = engine.decide(req, policy="support-bot")
            engine.record(decision, error=RuntimeError(f"upstream rejected {value}"))
        assert engine._observer.log.flush()
    text = path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 2 * len(VALUES)
    assert "4111111111111111" not in text
    found = []
    for line in lines:
        logged = "\n".join(strings(line))
        found += [v for v in VALUES if v in logged or json.dumps(v)[1:-1] in text]
    assert found == []
