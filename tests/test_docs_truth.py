"""Commands and docs that told something false on 0.1.0 (#12)."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyd import Engine
from policyd.cli import main
from policyd.render import RULES

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    "args",
    [
        ["schema", "-o", "{dir}/missing/schema.json"],
        ["export", "litellm", str(REPO / "policies"), "--policy", "support-bot", "-o",
         "{dir}/missing/config.yaml"],
    ],
)  # fmt: skip
def test_output_into_a_missing_directory_is_a_message_not_a_traceback(
    tmp_path: Path, args: list[str]
) -> None:
    result = run(*[a.replace("{dir}", str(tmp_path)) for a in args])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "cannot write" in result.output and "mkdir -p" in result.output
    assert "Traceback" not in result.output


def test_bench_with_an_unknown_policy_exits_2() -> None:
    result = run("bench", str(REPO / "policies"), "--policy", "support-bto", "--n", "100")
    assert result.exit_code == 2
    assert "unknown policy 'support-bto'" in result.output
    assert "did you mean 'support-bot'?" in result.output


def test_every_diagnostic_code_is_in_the_readme_table() -> None:
    table = README[README.index("## Diagnostics") : README.index("## How the parts work")]
    ranges = [(int(a), int(b)) for a, b in re.findall(r"PD(\d{3})–PD(\d{3})", table)] + [
        (int(c), int(c)) for c in re.findall(r"PD(\d{3})(?!–)", table)
    ]
    listed = [c for c in RULES if c[2:].isdigit()]
    missing = [c for c in listed if not any(lo <= int(c[2:]) <= hi for lo, hi in ranges)]
    assert missing == []


def test_readme_and_docs_cel_quote_the_same_cel_figures() -> None:
    cel = (REPO / "docs" / "cel.md").read_text(encoding="utf-8")
    mean = re.search(
        r"geometric mean \(14\)\*\* \| \| \| \| \| \*\*(\S+)\*\* \| \*\*(\S+)\*\*", cel
    )
    worst = re.search(r"worst case\*\* \| \| \| \| \| \*\*(\S+)\*\* \| \*\*(\S+)\*\*", cel)
    assert mean and worst
    row = next(line for line in README.splitlines() if "compiled vs cel-python" in line)
    assert f"{mean.group(1)} faster" in row and f"worst {worst.group(1)}" in row
    row = next(line for line in README.splitlines() if "compiled vs hand-written" in line)
    assert f"{mean.group(2)} (geometric mean; worst {worst.group(2)})" in row


def test_explain_lists_passed_guardrails_and_rules_that_did_not_match() -> None:
    result = run(
        "eval", str(REPO / "policies"), "--policy", "support-bot", "--request",
        str(REPO / "examples" / "requests" / "enterprise-code.json"), "--explain",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [re.split(r"\s{2,}", line.strip()) for line in result.output.splitlines()]
    assert ["guardrails", "pii", "pass", "nothing found (pii)"] in rows
    assert ["guardrails", "free-tier-no-code", "pass", "condition false"] in rows
    assert ["routing", "long-input", "not reached", "an earlier rule matched"] in rows


def test_explain_says_no_match_for_rules_before_the_default(tmp_path: Path) -> None:
    from policyd.document import Policy
    from policyd.explain import explain_rows

    policy = Policy.model_validate(
        {
            "apiVersion": "policyd/v1",
            "kind": "Policy",
            "metadata": {"name": "p"},
            "models": {"m": {"litellm": "openai/m"}},
            "tiers": {"t": {"targets": [{"model": "m"}]}},
            "routing": {"default": "t", "rules": [{"name": "r", "when": "false", "tier": "t"}]},
        }
    )
    trace = [{"stage": "routing", "rule": None, "outcome": "default", "detail": "t"}]
    assert explain_rows(policy, trace)[0] == ("routing", "r", "no match", "condition false")


def test_a_context_window_skip_is_traced_once_per_model(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "apiVersion: policyd/v1\nkind: Policy\nmetadata: {name: p}\n"
        "models:\n  a: {litellm: openai/a, context_window: 100}\n"
        "tiers:\n  t: {targets: [{model: a}], fallback: [u]}\n  u: {targets: [{model: a}]}\n"
        "routing: {default: t}\n"
    )
    with Engine.from_path(str(tmp_path)) as engine:
        decision = engine.decide({"messages": [], "input_tokens": 500, "max_tokens": 10})
    assert decision.blocked_by == "context_window"
    skips = [t for t in decision.trace if t.outcome == "skip"]
    assert [(t.rule, t.detail) for t in skips] == [("a", "context window 100 < 510 tokens needed")]


def test_the_embedded_example_labels_what_it_prints() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "embedded_engine.py")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"serving revision \(content digest\): [0-9a-f]{12}", last)


def test_the_litellm_example_without_the_extra_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)  # as if litellm were not installed
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(REPO / "examples" / "litellm_router_app.py"), run_name="__main__")
    assert "pip install 'policyd[litellm]'" in str(exc.value.code)


def test_ci_example_installs_from_the_repository_pinned_to_a_commit() -> None:
    ci = (REPO / "examples" / "ci" / "github-actions.yml").read_text()
    assert "pip install policyd" not in ci
    assert re.search(r"git\+https://github\.com/\S+@\$\{POLICYD_COMMIT\}", ci)
    hooks = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert "rev: v0.1.0" not in hooks and "rev: <commit SHA>" in hooks
