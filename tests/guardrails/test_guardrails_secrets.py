"""Secret detection: one stable kind per provider, look-alikes not flagged."""

from __future__ import annotations

import pytest
from guardrail_corpus import A36, PEM_BODY, SECRET_NEGATIVES, SECRET_POSITIVES

from policyd.guardrails import SECRET_KINDS, pii_check, redact

SECRETS = pii_check(["secret"])


@pytest.mark.parametrize(("kind", "value"), SECRET_POSITIVES, ids=lambda x: str(x)[:24])
def test_secret_is_found_with_its_provider_kind(kind: str, value: str) -> None:
    text = f"config:\n  token: {value}\nend"
    findings = SECRETS.scan(text)
    assert [(f.kind, text[f.start : f.end]) for f in findings] == [(kind, value)]
    assert findings[0].label == "SECRET"


@pytest.mark.parametrize("text", SECRET_NEGATIVES, ids=lambda x: x[:24])
def test_look_alike_is_not_a_secret(text: str) -> None:
    assert SECRETS.scan(text) == []


def test_aws_secret_key_redacts_only_the_value() -> None:
    value = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
    text = f"aws_secret_access_key = {value}\nregion = us-east-1"
    findings = SECRETS.scan(text)
    assert [f.kind for f in findings] == ["secret:aws_secret_key"]
    assert redact(text, findings) == "aws_secret_access_key = [SECRET]\nregion = us-east-1"


def test_truncated_private_key_block_is_still_flagged() -> None:
    text = "here is my key -----BEGIN RSA PRIVATE KEY-----\n" + PEM_BODY
    findings = SECRETS.scan(text)
    assert [f.kind for f in findings] == ["secret:private_key"]
    assert findings[0].end == len(text)


def test_every_secret_kind_has_a_stable_id_and_a_positive_case() -> None:
    assert set(SECRET_KINDS) == {kind for kind, _ in SECRET_POSITIVES} | {"secret:aws_secret_key"}
    assert all(k.startswith("secret:") and k[7:].isidentifier() for k in SECRET_KINDS)


def test_one_secret_kind_can_be_selected_alone() -> None:
    check = pii_check(["secret:github"])
    text = "ghp_" + A36 + " and AKIA" + "IOSFODNN7EXAMPLE"
    assert [f.kind for f in check.scan(text)] == ["secret:github"]
