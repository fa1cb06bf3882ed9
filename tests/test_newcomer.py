"""What a newcomer following the README trips over: CLI answers and README snippets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyd.cli import main

REPO = Path(__file__).resolve().parent.parent

_HEAD = """\
apiVersion: policyd/v1
kind: Policy
metadata: {{name: {name}}}
context:
  user: {{id: string}}
models:
  m-{name}: {{litellm: openai/gpt-4o-mini, price: {{input_per_mtok: 1, output_per_mtok: 1}}}}
tiers:
  t: {{targets: [{{model: m-{name}}}]}}
routing: {{default: t}}
"""
_BUDGET = """\
budgets:
  - {name: daily, key: request.user.id, window: calendar_day, limit: {usd: 1}}
"""


def _bundle(tmp_path: Path) -> Path:
    # "a-first" sorts before "with-budget" and has no budgets at all
    (tmp_path / "a.yaml").write_text(_HEAD.format(name="a-first"))
    (tmp_path / "b.yaml").write_text(_HEAD.format(name="with-budget") + _BUDGET)
    return tmp_path


def test_budgets_budget_without_policy_finds_the_policy_that_has_it(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    result = CliRunner().invoke(main, ["budgets", str(bundle), "--budget", "daily"])
    assert result.exit_code == 0, result.output
    assert result.output == "no live budget counters in the memory store of this process\n"
    result = CliRunner().invoke(main, ["budgets", str(bundle), "--budget", "dayly"])
    assert result.exit_code == 2
    assert "no policy has a budget 'dayly' (budgets: daily)" in result.output


def test_budgets_on_a_bundle_without_budgets_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["budgets", str(REPO / "policies")])
    assert result.exit_code == 0, result.output
    assert "no policy of this bundle has a budgets: section" in result.output
    bundle = _bundle(tmp_path)
    result = CliRunner().invoke(main, ["budgets", str(bundle), "--policy", "a-first"])
    assert result.exit_code == 0 and "policy 'a-first' has no budgets: section" in result.output


def test_the_readme_python_snippet_runs_as_written(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "the README shows how to use the engine from Python"
    for block in blocks:
        result = subprocess.run(
            [sys.executable, "-c", block],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, block + result.stderr[-3000:]


def test_a_policy_checked_without_its_catalog_is_told_to_add_it() -> None:
    result = CliRunner().invoke(main, ["check", str(REPO / "policies" / "support-bot.yaml")])
    assert result.exit_code == 1
    assert "error PD201: unknown model 'gpt-4o-mini' in tier 'economy'" in result.output
    assert "check this file together with the ModelCatalog that defines it" in result.output
    assert "fallback 'claude-haiku' is neither a model nor a tier" in result.output
    together = [str(REPO / "policies" / f) for f in ("support-bot.yaml", "models.yaml")]
    assert CliRunner().invoke(main, ["check", *together]).exit_code == 0


def test_diff_of_plain_requests_on_several_policies_says_to_pass_policy(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text('{"user": {"id": "u1"}, "messages": [{"role": "user", "content": "hi"}]}\n')
    policies = str(REPO / "policies")
    result = CliRunner().invoke(main, ["diff", policies, policies, "--requests", str(requests)])
    assert result.exit_code == 0, result.output
    assert "not replayed: no policy logged and the bundle has several: pass --policy" in (
        result.output
    )
    assert "policy ?" not in result.output


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs a git checkout")
def test_diff_names_an_unknown_git_revision() -> None:
    result = CliRunner().invoke(
        main,
        ["diff", "git:no-such-rev", str(REPO / "policies"), "--requests", str(REPO / "README.md")],
    )
    assert result.exit_code == 2
    assert "git:no-such-rev: no such revision" in result.output
    assert "rev-parse" not in result.output


def test_exit_codes_of_test_and_eval_are_the_ones_the_readme_lists(tmp_path: Path) -> None:
    broken = tmp_path / "p.yaml"
    broken.write_text(_HEAD.format(name="p").replace("routing:", "routng:"))
    runner = CliRunner()
    assert runner.invoke(main, ["test", str(broken)]).exit_code == 1  # a broken bundle
    assert runner.invoke(main, ["test", str(tmp_path / "missing")]).exit_code == 2  # usage
    request = str(REPO / "examples" / "requests" / "faq.json")
    unknown = runner.invoke(
        main, ["eval", str(REPO / "policies"), "--policy", "nope", "--request", request]
    )
    assert unknown.exit_code == 2 and "unknown policy 'nope'" in unknown.output


def test_eval_warns_about_a_misspelt_request_attribute(tmp_path: Path) -> None:
    request = tmp_path / "typo.json"
    good = (REPO / "examples" / "requests" / "enterprise-code.json").read_text()
    request.write_text(good.replace('"tenant"', '"tenat"'))
    args = ["eval", str(REPO / "policies"), "--policy", "support-bot", "--request"]
    result = CliRunner().invoke(main, [*args, str(request)])
    assert result.exit_code == 0
    assert (
        "policyd eval: warning: request attribute 'tenat' is not declared by policy "
        "'support-bot', which never reads it; did you mean 'tenant'?"
    ) in result.output
    clean = CliRunner().invoke(main, [*args, str(REPO / "examples/requests/enterprise-code.json")])
    assert clean.exit_code == 0 and "warning" not in clean.output


def test_the_revision_digest_does_not_depend_on_where_the_bundle_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from policyd.bundle import load_bundle

    shutil.copytree(REPO / "policies", tmp_path / "a" / "policies")
    shutil.copytree(REPO / "policies", tmp_path / "b" / "mounted")
    digests = {load_bundle(REPO / "policies").digest}
    digests.add(load_bundle(tmp_path / "a" / "policies").digest)
    digests.add(load_bundle(tmp_path / "b" / "mounted").digest)
    monkeypatch.chdir(tmp_path / "a")
    digests.add(load_bundle("policies").digest)
    assert len(digests) == 1
    (tmp_path / "b" / "mounted" / "models.yaml").write_text(
        (REPO / "policies" / "models.yaml").read_text() + "# changed\n"
    )
    assert load_bundle(tmp_path / "b" / "mounted").digest not in digests
