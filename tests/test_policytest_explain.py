"""PolicyTest cases that explain a failure, record outcomes and repeat (#12)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from click.testing import CliRunner

from policyd.bundle import load_bundle
from policyd.cli import main
from policyd.testing import run_tests

POLICY = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: bot}
context: {user: {id: string}, tier: string}
models:
  small: {litellm: openai/small, price: {input_per_mtok: 1, output_per_mtok: 2}}
  big: {litellm: openai/big, price: {input_per_mtok: 5, output_per_mtok: 10}}
tiers:
  economy: {targets: [{model: small}, {model: big}]}
  premium: {targets: [{model: big}]}
routing:
  default: economy
  rules:
    - {name: pros, when: "request.tier == 'pro'", tier: premium}
  cooldown: {after_failures: 1, for: 5m}
budgets:
  - name: three-a-day
    key: request.user.id
    window: calendar_day
    limit: {requests: 3}
    on_exceed: {action: block, message: Three calls a day}
"""


def write_bundle(tmp_path: Path, cases: str) -> str:
    (tmp_path / "bot.yaml").write_text(POLICY)
    (tmp_path / "bot.test.yaml").write_text(
        "apiVersion: policyd/v1\nkind: PolicyTest\nmetadata: {name: t}\npolicy: bot\n"
        "now: 2026-12-01T09:00:00Z\ncases:\n" + textwrap.indent(textwrap.dedent(cases), "  ")
    )
    return str(tmp_path)


def results(path: str):
    bundle = load_bundle(path)
    assert bundle.ok, [str(d) for d in bundle.diagnostics]
    return run_tests(bundle)[0]


def test_the_fourth_call_of_the_day_is_blocked(tmp_path: Path) -> None:
    path = write_bundle(
        tmp_path,
        """\
        - name: three calls
          request: {user: {id: u1}, messages: []}
          repeat: 3
          record: {output_tokens: 10}
          expect: {allowed: true}
        - name: the fourth is blocked
          request: {user: {id: u1}, messages: []}
          expect: {allowed: false, blocked_by: three-a-day}
        - name: another user is not
          request: {user: {id: u2}, messages: []}
          expect: {allowed: true}
        """,
    )
    assert [r.passed for r in results(path)] == [True, True, True]


def test_a_recorded_failure_starts_a_cooldown(tmp_path: Path) -> None:
    path = write_bundle(
        tmp_path,
        """\
        - name: small fails
          request: {user: {id: u1}, messages: []}
          record: {error: rate_limit}
          expect: {model: small}
        - name: small is cooling down
          request: {user: {id: u2}, messages: []}
          expect: {model: big}
        """,
    )
    assert [r.passed for r in results(path)] == [True, True]


def test_a_failing_case_says_why(tmp_path: Path) -> None:
    path = write_bundle(
        tmp_path,
        """\
        - name: wrong tier
          request: {user: {id: u1}, tier: pro, messages: []}
          expect: {tier: economy}
        - name: wrongly expected allowed
          request: {user: {id: u1}, messages: []}
          repeat: 4
          expect: {allowed: true}
        """,
    )
    tier, blocked = results(path)
    assert not tier.passed
    assert tier.why[0] == "tier premium chosen by rule pros"
    assert any(line.startswith("routing pros match") for line in tier.why)
    assert not blocked.passed and blocked.run == 3  # u1 already made one call above
    assert blocked.why[0] == "blocked_by: three-a-day; message: Three calls a day"
    assert any(line.startswith("budgets three-a-day block") for line in blocked.why)
    out = CliRunner().invoke(main, ["test", path]).output
    assert "why:" in out and "tier premium chosen by rule pros" in out and "run 3" in out


def test_no_cases_exits_1_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "bot.yaml").write_text(POLICY)
    result = CliRunner().invoke(main, ["test", str(tmp_path)])
    assert result.exit_code == 1
    assert "no PolicyTest cases found" in result.output
