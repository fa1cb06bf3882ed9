"""``policyd check`` and friends as a CI job sees them: exit codes, every output format, help.

Exit codes: 0 clean, 1 errors (or warnings with --strict), 2 usage errors. Most runs use
click's CliRunner (in-process, fast); one runs the installed console script for real.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
from click.testing import CliRunner, Result

from policyd.cli import main

REPO = Path(__file__).resolve().parent.parent
BROKEN = REPO / "examples" / "broken"
JSON_KEYS = ["file", "line", "column", "severity", "code", "message", "hint"]

CLEAN = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: clean}
models:
  small: {litellm: openai/gpt-4o-mini}
tiers:
  economy: {targets: [{model: small}]}
routing: {default: economy}
"""
# Two errors: an unknown model (line 7) and an unknown fallback (line 8).
ERRORS = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: errors}
models:
  small: {litellm: openai/gpt-4o-mini}
tiers:
  economy: {targets: [{model: smal}],
            fallback: [larg]}
routing: {default: economy}
"""
# Valid, with one warning: strategy cheapest and a model without a price (line 9).
WARNS = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: warns}
models:
  local: {litellm: ollama/llama3}
tiers:
  economy:
    strategy: cheapest
    targets: [{model: local}]
routing: {default: economy}
"""


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"policyd {' '.join(args)} crashed:\n{result.output}") from (
            result.exception
        )
    return result


def problems(result: Result) -> list[dict[str, Any]]:
    parsed = json.loads(result.output)
    assert isinstance(parsed, list)
    return parsed


# --- exit codes ------------------------------------------------------------------------------


def test_clean_bundle_exits_0(tmp_path: Path) -> None:
    result = run("check", write(tmp_path, "clean.yaml", CLEAN))
    assert (result.exit_code, result.output) == (0, "no problems found\n")


def test_errors_exit_1_and_text_shows_place_source_and_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "errors.yaml", ERRORS)
    result = run("check", path)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{path}:7:31: error PD201: unknown model 'smal' in tier 'economy'",
        " 7 |   economy: {targets: [{model: smal}],",
        "   |                               ^",
        "  hint: did you mean 'small'?",
        "",
        f"{path}:8:24: error PD203: fallback 'larg' is neither a model nor a tier",
        " 8 |             fallback: [larg]}",
        "   |                        ^",
        "  hint: a fallback names a model (under models: or in a ModelCatalog) or a tier",
        "",
        "2 errors in 1 file",
    ]


def test_warnings_exit_0_unless_strict(tmp_path: Path) -> None:
    path = write(tmp_path, "warns.yaml", WARNS)
    relaxed, strict = run("check", path), run("check", "--strict", path)
    assert (relaxed.exit_code, strict.exit_code) == (0, 1)
    assert relaxed.output == strict.output
    assert f"{path}:9:23: warning PD502: model 'local' has no price" in relaxed.output


def test_the_shipped_policies_pass_check_strict() -> None:
    result = run("check", "--strict", str(REPO / "policies"))
    assert (result.exit_code, result.output) == (0, "no problems found\n")


def test_strict_does_not_fail_a_clean_bundle(tmp_path: Path) -> None:
    assert run("check", "--strict", write(tmp_path, "clean.yaml", CLEAN)).exit_code == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["check", "does/not/exist.yaml"], "'does/not/exist.yaml' does not exist"),
        (["check"], "Missing argument 'PATHS...'"),
        (
            ["check", "--format", "xml", "."],
            "'xml' is not one of 'text', 'json', 'github', 'sarif'",
        ),
        (["check", "--stritc", "."], "No such option '--stritc'. Did you mean '--strict'?"),
    ],
)
def test_usage_errors_exit_2_and_say_what_is_wrong(args: list[str], says: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert says in result.output


def test_missing_path_among_good_ones_exits_2_and_checks_nothing(tmp_path: Path) -> None:
    result = run("check", write(tmp_path, "errors.yaml", ERRORS), str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "PD201" not in result.output


def test_directory_without_yaml_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a policy")
    result = run("check", "--format", "json", str(tmp_path))
    assert result.exit_code == 1
    assert [(p["code"], p["line"], p["column"]) for p in problems(result)] == [("PD010", 1, 1)]


# --- several paths, one report ---------------------------------------------------------------


def test_several_paths_are_checked_in_one_run_sorted_by_file_and_line(tmp_path: Path) -> None:
    b = write(tmp_path, "b/errors.yaml", ERRORS)
    a = write(tmp_path, "a/warns.yaml", WARNS)
    clean = write(tmp_path, "c/clean.yaml", CLEAN)
    broken = write(tmp_path, "a/broken.yaml", "apiVersion: policyd/v1\nkind: Policy\nmetadat: {}\n")
    result = run("check", "--format", "json", b, clean, str(tmp_path / "a"))
    assert result.exit_code == 1
    assert [(p["file"], p["line"], p["code"]) for p in problems(result)] == [
        (broken, 3, "PD101"),  # metadat: one typo, one error (not also "missing metadata")
        (a, 9, "PD502"),
        (b, 7, "PD201"),
        (b, 8, "PD203"),
    ]


def test_one_bundle_per_path_so_a_model_defined_elsewhere_is_unknown(tmp_path: Path) -> None:
    catalog = """\
    apiVersion: policyd/v1
    kind: ModelCatalog
    metadata: {name: shared}
    models: {small: {litellm: openai/gpt-4o-mini}}
    """
    policy = CLEAN.replace("models:\n  small: {litellm: openai/gpt-4o-mini}\n", "")
    write(tmp_path, "bundle/models.yaml", catalog)
    path = write(tmp_path, "bundle/policy.yaml", policy)
    assert run("check", str(tmp_path / "bundle")).exit_code == 0
    alone = run("check", "--format", "json", path)
    assert [p["code"] for p in problems(alone)] == ["PD201"]


# --- output formats --------------------------------------------------------------------------


def test_json_has_exactly_the_documented_keys_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, "errors.yaml", ERRORS)
    result = run("check", "--format", "json", path, write(tmp_path, "warns.yaml", WARNS))
    assert result.exit_code == 1
    found = problems(result)
    assert [list(p) for p in found] == [JSON_KEYS] * 3
    assert found[0] == {
        "file": path,
        "line": 7,
        "column": 31,
        "severity": "error",
        "code": "PD201",
        "message": "unknown model 'smal' in tier 'economy'",
        "hint": "did you mean 'small'?",
    }
    assert [p["severity"] for p in found] == ["error", "error", "warning"]


def test_json_of_a_clean_bundle_is_an_empty_list(tmp_path: Path) -> None:
    result = run("check", "--format", "json", write(tmp_path, "clean.yaml", CLEAN))
    assert (result.exit_code, problems(result)) == (0, [])


def test_github_format_is_one_workflow_command_per_problem(tmp_path: Path) -> None:
    errors = write(tmp_path, "errors.yaml", ERRORS)
    warns = write(tmp_path, "warns.yaml", WARNS)
    result = run("check", "--format", "github", errors, warns)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"::error file={errors},line=7,col=31,title=PD201::")
    assert lines[1].startswith(f"::error file={errors},line=8,col=24,title=PD203::")
    assert lines[2].startswith(f"::warning file={warns},line=9,col=23,title=PD502::")
    assert lines[0].endswith(
        "::unknown model 'smal' in tier 'economy'%0Ahint: did you mean 'small'?"
    )


def _sarif(tmp_path: Path) -> dict[str, Any]:
    result = run(
        "check",
        "--format",
        "sarif",
        write(tmp_path, "errors.yaml", ERRORS),
        write(tmp_path, "warns.yaml", WARNS),
    )
    assert result.exit_code == 1
    sarif: dict[str, Any] = json.loads(result.output)
    return sarif


def test_sarif_lists_each_problem_with_its_rule_and_region(tmp_path: Path) -> None:
    sarif = _sarif(tmp_path)
    assert sarif["version"] == "2.1.0"
    (run_,) = sarif["runs"]
    rules = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    assert rules == ["PD201", "PD203", "PD502"]
    results = [
        (
            r["ruleId"],
            r["level"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
            r["locations"][0]["physicalLocation"]["region"]["startColumn"],
        )
        for r in run_["results"]
    ]
    assert results == [
        ("PD201", "error", 7, 31),
        ("PD203", "error", 8, 24),
        ("PD502", "warning", 9, 23),
    ]


def test_sarif_validates_against_the_sarif_2_1_0_schema(tmp_path: Path, shared_dir: Path) -> None:
    schema_file = shared_dir / "schemas" / "sarif-schema-2.1.0.json"
    if not schema_file.is_file():
        pytest.skip(f"{schema_file} is absent")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    jsonschema.validate(_sarif(tmp_path), schema)


# --- no traceback for any input ---------------------------------------------------------------


def _broken_examples() -> list[Path]:
    return sorted(BROKEN.glob("*.yaml"))


_SAYS = re.compile(r"^# \S+:(\d+):(\d+): (error|warning) (PD\d{3}): (.*)$", re.MULTILINE)


def _expected(path: Path) -> tuple[str, list[tuple[int, int, str, str, str]]]:
    """The code a broken example's first line names, and the problems its comment quotes."""
    text = path.read_bytes().decode("utf-8", "replace")
    first = re.match(r"# (PD\d{3}) ", text)
    assert first, f"{path.name}: the first line must start with '# PDxxx '"
    quoted = [(int(ln), int(col), s, code, m) for ln, col, s, code, m in _SAYS.findall(text)]
    return first.group(1), quoted


def test_there_is_a_broken_example_for_each_error_class() -> None:
    codes = {_expected(p)[0] for p in _broken_examples()}
    wanted = {f"PD00{i}" for i in range(1, 10)}
    wanted |= {f"PD10{i}" for i in range(1, 7)}
    wanted |= {f"PD2{i:02d}" for i in range(1, 17)}
    wanted |= {"PD301", "PD302", "PD303", "PD304", "PD305"}
    wanted |= {f"PD40{i}" for i in range(1, 10)} | {"PD410", "PD501", "PD502", "PD503", "PD504"}
    wanted |= {"PD602"}
    assert sorted(wanted - codes) == []


@pytest.mark.parametrize("path", _broken_examples(), ids=lambda p: p.name)
def test_each_broken_example_fails_check_as_its_comment_says(path: Path) -> None:
    code, quoted = _expected(path)
    result = run("check", "--strict", "--format", "json", str(path))
    assert result.exit_code == 1, result.output
    found = [
        (p["line"], p["column"], p["severity"], p["code"], p["message"]) for p in problems(result)
    ]
    assert code in {f[3] for f in found}, found
    assert quoted, f"{path.name}: quote what policyd check says in the comment"
    assert found == quoted, "run python examples/broken/refresh.py, or fix the message"
    assert all(p["hint"] for p in problems(result)), "every broken example's problem has a hint"


# --- help ------------------------------------------------------------------------------------


def _subcommands(group: click.Group) -> dict[str, click.Command]:
    """Every subcommand, those loaded only when run included (click's own lookup)."""
    ctx = click.Context(group)
    found = {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}
    return {name: command for name, command in found.items() if command is not None}


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in sorted(_subcommands(group).items()):
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = _subcommands(command)[name]
    return command


@pytest.mark.parametrize("path", _commands(main), ids=lambda p: " ".join(("policyd", *p)))
def test_help_exits_0_and_mentions_every_option(path: tuple[str, ...]) -> None:
    result = run(*path, "--help")
    assert result.exit_code == 0
    command = _command(path)
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in [*param.opts, *param.secondary_opts]:
                assert re.search(rf"(^|[\s,/]){re.escape(opt)}\b", result.output), opt
        elif isinstance(param, click.Argument) and param.name:
            assert param.name.upper() in result.output
    if isinstance(command, click.Group):
        for name in _subcommands(command):
            assert name in result.output


def test_check_help_documents_formats_and_exit_codes() -> None:
    output = " ".join(run("check", "--help").output.split())  # help text is wrapped
    for words in ("text|json|github|sarif", "Exit 0 when clean", "1 on errors", "2 on usage"):
        assert words in output


# --- the installed console script, for real ---------------------------------------------------


def test_installed_console_script_checks_a_bundle(tmp_path: Path) -> None:
    script = shutil.which("policyd", path=os.path.dirname(sys.executable)) or shutil.which(
        "policyd"
    )
    command = [script] if script else [sys.executable, "-m", "policyd.cli"]
    path = write(tmp_path, "errors.yaml", ERRORS)
    done = subprocess.run(
        [*command, "check", "--format", "json", path],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    assert [p["code"] for p in json.loads(done.stdout)] == ["PD201", "PD203"]


# --- policyd eval and policyd test -------------------------------------------------------------

TWO_POLICIES = CLEAN + "---\n" + CLEAN.replace("name: clean", "name: other")
REQUEST = '{"messages": [{"role": "user", "content": "hi"}]}'


def test_eval_prints_the_decision_as_json(tmp_path: Path) -> None:
    request = write(tmp_path, "request.json", REQUEST)
    result = run("eval", write(tmp_path, "p.yaml", CLEAN), "--request", request, "--json")
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert (decision["allowed"], decision["tier"], decision["model"]) == (True, "economy", "small")


def test_eval_needs_policy_when_the_bundle_has_several(tmp_path: Path) -> None:
    bundle = write(tmp_path, "p.yaml", TWO_POLICIES)
    request = write(tmp_path, "request.json", REQUEST)
    result = run("eval", bundle, "--request", request)
    assert result.exit_code == 2
    assert (
        "the bundle has 2 policies (clean, other): choose one with --policy NAME" in result.output
    )
    assert run("eval", bundle, "--request", request, "--policy", "other").exit_code == 0


def test_eval_reads_a_yaml_request_as_yaml_1_2(tmp_path: Path) -> None:
    policy = CLEAN.replace(
        "routing: {default: economy}",
        "context: {answer: string}\nrouting: {default: economy}\nguardrails:\n"
        '  input: [{name: said-no, when: request.answer == "no", message: refused}]',
    )
    request = write(tmp_path, "request.yaml", "answer: no\nmessages: []\n")
    result = run("eval", write(tmp_path, "p.yaml", policy), "--request", request, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["blocked_by"] == "said-no"


def test_eval_yaml_and_json_requests_decide_the_same(tmp_path: Path) -> None:
    policy = CLEAN.replace(
        "routing: {default: economy}",
        "  premium: {targets: [{model: small}]}\nrouting:\n  default: economy\n"
        "  rules: [{name: long, when: request.input_tokens > 1000, tier: premium}]",
    )
    bundle = write(tmp_path, "p.yaml", policy)
    as_json = write(tmp_path, "r.json", '{"input_tokens": 5000, "messages": []}')
    as_yaml = write(tmp_path, "r.yaml", "input_tokens: 5000\nmessages: []\n")
    decisions = [
        json.loads(run("eval", bundle, "--request", r, "--json").output) for r in (as_json, as_yaml)
    ]
    assert [d["tier"] for d in decisions] == ["premium", "premium"]


@pytest.mark.parametrize(
    ("request_text", "says"),
    [("{messages: [", "request.yaml:1:12: not JSON, and not YAML"), ("- a\n", "not a mapping")],
)
def test_eval_rejects_an_unreadable_request_with_exit_2(
    tmp_path: Path, request_text: str, says: str
) -> None:
    request = write(tmp_path, "request.yaml", request_text)
    result = run("eval", write(tmp_path, "p.yaml", CLEAN), "--request", request)
    assert result.exit_code == 2
    assert says in result.output


def test_eval_on_a_broken_bundle_shows_the_errors_and_exits_1(tmp_path: Path) -> None:
    request = write(tmp_path, "request.json", REQUEST)
    result = run("eval", write(tmp_path, "p.yaml", ERRORS), "--request", request)
    assert result.exit_code == 1
    assert "error PD201: unknown model 'smal' in tier 'economy'" in result.output


def test_policyd_test_passes_the_shipped_cases() -> None:
    result = run("test", str(REPO / "policies"))
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith(" passed, 0 failed")


def test_policyd_test_shows_expected_and_actual_and_exits_1(tmp_path: Path) -> None:
    cases = """\
    apiVersion: policyd/v1
    kind: PolicyTest
    metadata: {name: t}
    policy: clean
    cases:
      - {name: right, request: {messages: []}, expect: {tier: economy}}
      - {name: wrong, request: {messages: []}, expect: {tier: premium}}
    """
    write(tmp_path, "p.yaml", CLEAN)
    write(tmp_path, "t.yaml", cases)
    result = run("test", str(tmp_path))
    assert result.exit_code == 1
    assert '       expected: "premium"\n       actual:   "economy"' in result.output
    assert result.output.rstrip().endswith("1 passed, 1 failed")
