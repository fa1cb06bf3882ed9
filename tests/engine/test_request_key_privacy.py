"""A RequestError names a mapping key only when it is a field name, never a secret or IBAN."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from engine_bundles import policy

from policyd.errors import RequestError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "guardrails"))
from guardrail_corpus import PII_POSITIVES, SECRET_POSITIVES

VALUES = [value for _, value in PII_POSITIVES + SECRET_POSITIVES]
BODY = """
tiers:
  t: {targets: [{model: small}]}
routing: {default: t}
"""


@pytest.mark.parametrize("value", VALUES)
def test_a_key_that_is_a_secret_or_pii_is_named_by_position(make_engine, value: str):
    engine = make_engine(policy(BODY))
    req = {"metadata": {"ok": 1, value: "bad \ud800"}, "max_tokens": 5}
    req["messages"] = [{"role": "user", "content": "hi"}]
    with pytest.raises(RequestError) as caught:
        engine.decide(req)
    # before: AWS, GitHub, Google and Stripe keys and IBANs were quoted as field names
    assert value not in str(caught.value) and "[key #1]" in str(caught.value)


def test_field_names_are_still_named(make_engine):
    engine = make_engine(policy(BODY))
    for key in ("max_tokens", "x-request-id", "gpt4o", "userId"):
        req = {"metadata": {key: "bad \ud800"}, "max_tokens": 5}
        req["messages"] = [{"role": "user", "content": "hi"}]
        with pytest.raises(RequestError) as caught:
            engine.decide(req)
        assert f"request.metadata.{key}" in str(caught.value)
