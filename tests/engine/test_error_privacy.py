"""No request value reaches a Decision, its trace or `policyd eval` through a CEL error (#11)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from engine_bundles import CATALOG, policy

from policyd.cli import main

PII = "mail jane.doe@example.com"

BODY = """
tiers:
  cheap: {targets: [{model: small}]}
routing:
  default: cheap
  rules:
    - {name: by-note, when: 'int(request.metadata.note) > 3', tier: cheap}
guardrails:
  input:
    - {name: convert, when: 'double(request.metadata.note) > 1.0', on_error: allow}
    - {name: lookup, when: 'request.metadata[request.user.id] == 1', on_error: allow}
    - {name: regex, when: 'request.metadata.note.matches(request.metadata.pattern)',
       on_error: allow}
    - {name: stamp, when: 'timestamp(request.metadata.note) < now', on_error: allow}
    - {name: strict, when: 'bool(request.metadata.note)'}
"""

REQUEST = {
    "tenant": {"id": "t", "tier": "pro"},
    "user": {"id": "jane.doe@example.com"},
    "tags": [],
    "metadata": {"note": PII, "pattern": f"({PII}"},
    "messages": [{"role": "user", "content": "hello"}],
}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "models.yaml").write_text(textwrap.dedent(CATALOG))
    (tmp_path / "policy.yaml").write_text(policy(BODY))
    return tmp_path


def _leaks(text: str) -> list[str]:
    return [s for s in (PII, "jane", "example.com") if s in text]


def test_decision_trace_and_to_dict_quote_no_request_value(make_engine) -> None:
    decision = make_engine(policy(BODY)).decide(REQUEST)
    assert not decision.allowed and decision.blocked_by == "strict"
    errors = [t for t in decision.trace if "error" in t.outcome or "fail" in t.detail]
    assert len(errors) >= 5  # every rule above errored and says so
    assert any("cannot convert string to double" in t.detail for t in decision.trace)
    assert any("cannot convert string to bool" in t.detail for t in decision.trace)
    assert _leaks(json.dumps(decision.to_dict(), default=str)) == []
    assert _leaks(repr(decision.trace)) == []
    assert _leaks(str(decision.message)) == []


def test_policyd_eval_explain_quotes_no_request_value(bundle: Path, tmp_path: Path) -> None:
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(REQUEST))
    for extra in (["--explain"], ["--json"]):
        result = CliRunner().invoke(
            main, ["eval", str(bundle), "--request", str(request_file), *extra]
        )
        assert result.exit_code == 0, result.output
        assert "strict" in result.output
        assert _leaks(result.output) == []
