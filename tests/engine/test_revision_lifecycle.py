"""One decision, one revision: record() and check_output() use the revision that decided."""

from __future__ import annotations

import textwrap

from engine_bundles import CATALOG, policy

from policyd import Engine

BODY = """
tiers: {t: {targets: [{model: small}]}}
routing: {default: t}
guardrails:
  output:
    - {name: no-secrets, deny_terms: [classified], action: block}
"""


def test_check_output_uses_the_revision_that_made_the_decision(tmp_path):
    (tmp_path / "models.yaml").write_text(textwrap.dedent(CATALOG))
    (tmp_path / "p.yaml").write_text(policy(BODY))
    engine = Engine.from_path(tmp_path)
    before = engine.decide({"messages": [{"role": "user", "content": "hi"}]})

    (tmp_path / "p.yaml").write_text(policy(BODY.replace("classified", "restricted")))
    assert engine.reload()
    after = engine.decide({"messages": [{"role": "user", "content": "hi"}]})
    assert before.policy.digest != after.policy.digest

    text = "this is classified"
    assert not engine.check_output(before, text).allowed  # the old revision's guardrail
    assert engine.check_output(after, text).allowed
    assert not engine.check_output(after, "restricted data").allowed
