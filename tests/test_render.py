"""Renderers: text for people, JSON, GitHub workflow commands, SARIF 2.1.0 for code scanning."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

import policyd
from policyd.diagnostics import Diagnostic, Severity
from policyd.loader import load_path, load_text
from policyd.render import RULES, render, rule_description

ERR = Diagnostic(
    "policies/bot.yaml",
    3,
    9,
    Severity.ERROR,
    "PD102",
    "unknown kind 'Polcy'",
    "did you mean 'Policy'?",
)
WARN = Diagnostic(
    "policies/bot.yaml", 5, 3, Severity.WARNING, "PD501", "rule 'x' can never match", None, 5, 7
)
INFO = Diagnostic("policies/other.yaml", 1, 1, Severity.INFO, "PD301", "slow CEL path", "fine")
FILES = {"policies/bot.yaml": "apiVersion: policyd/v1\nmeta: {}\nkind:   Polcy\nx:\n  rules: []\n"}


# --- text ----------------------------------------------------------------------------------


def test_text_shows_location_source_line_caret_and_hint() -> None:
    out = render([ERR], "text", FILES)
    assert out.splitlines() == [
        "policies/bot.yaml:3:9: error PD102: unknown kind 'Polcy'",
        " 3 | kind:   Polcy",
        "   |         ^",
        "  hint: did you mean 'Policy'?",
        "",
        "1 error in 1 file",
    ]


def test_text_underlines_a_range_on_one_line() -> None:
    lines = render([WARN], "text", FILES).splitlines()
    assert lines[1:3] == [" 5 |   rules: []", "   |   ^^^^"]


def test_text_without_source_and_summary_counts() -> None:
    out = render([ERR, WARN, INFO], "text")
    assert out.splitlines() == [
        "policies/bot.yaml:3:9: error PD102: unknown kind 'Polcy'",
        "  hint: did you mean 'Policy'?",
        "",
        "policies/bot.yaml:5:3: warning PD501: rule 'x' can never match",
        "",
        "policies/other.yaml:1:1: info PD301: slow CEL path",
        "  hint: fine",
        "",
        "1 error, 1 warning, 1 info in 2 files",
    ]
    two = render([ERR, ERR, WARN, WARN], "text")
    assert two.endswith("2 errors, 2 warnings in 1 file")


def test_text_no_problems() -> None:
    assert render([], "text", FILES) == "no problems found"


def test_text_caret_aligns_under_tabs_and_wide_characters() -> None:
    text = "a:\n\tb: 1\nname: '名前' x\n"
    tab = Diagnostic("f.yaml", 2, 2, Severity.ERROR, "PD003", "tab")
    wide = Diagnostic("f.yaml", 3, 12, Severity.ERROR, "PD001", "wide")
    out = render([tab, wide], "text", {"f.yaml": text}).splitlines()
    assert out[2] == "   | \t^"
    assert out[6] == "   | " + " " * (7 + 4 + 2) + "^"  # 名前 take two cells each


def test_text_real_loader_error_with_line_out_of_range_and_control_characters() -> None:
    result = load_text("a: 1\nb: [1,\n", file="x.yaml")
    out = render(result.diagnostics, "text", result.files)
    assert out.startswith("x.yaml:2:4: error PD001: ")
    assert " 2 | b: [1,\n   |    ^\n" in out
    beyond = Diagnostic("x.yaml", 99, 1, Severity.ERROR, "PD001", "m")
    assert " | " not in render([beyond], "text", result.files)
    ctl = render([Diagnostic("c.yaml", 1, 1, Severity.ERROR, "PD001", "m")], "text",
                 {"c.yaml": "a: \x1b[31mred\n"})  # fmt: skip
    assert "\x1b" not in ctl and "\ufffd" in ctl


class _Counting:
    """A pattern of the renderer, counting how many characters it splits or replaces in."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.chars = 0

    def split(self, text: str) -> list[str]:
        self.chars += len(text)
        return self.pattern.split(text)

    def sub(self, repl: str, text: str) -> str:
        self.chars += len(text)
        return self.pattern.sub(repl, text)


def test_text_splits_each_file_into_lines_once_however_many_problems_it_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 4,000 misspelt keys in one file took 3.5 s to render: the file was split per problem
    import policyd.render as module

    n = 2000
    text = "".join(f"key{i}: 1\n" for i in range(n))
    other = "a: 1\nb: 2\n"
    files = {"big.yaml": text, "small.yaml": other}
    found = [
        Diagnostic("big.yaml", i + 1, 1, Severity.ERROR, "PD101", "unknown key") for i in range(n)
    ]
    found.insert(n // 2, Diagnostic("small.yaml", 2, 1, Severity.ERROR, "PD101", "unknown key"))
    counting = _Counting(module._BREAK)
    monkeypatch.setattr(module, "_BREAK", counting)
    out = render(found, "text", files).split("\n\n")
    assert counting.chars == len(text) + len(other)
    # each problem still shows its own line of its own file
    assert out[0].splitlines()[1:] == [" 1 | key0: 1", "   | ^"]
    assert out[n // 2].splitlines()[1:] == [" 2 | b: 2", "   | ^"]
    assert out[n].splitlines()[1:] == [f" {n} | key{n - 1}: 1", "      | ^"]


def test_text_cleans_only_the_shown_window_of_a_long_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # 10,000 problems on one 180,000-character line took 6 s: the whole line was cleaned of
    # control characters for each of them
    import policyd.render as module

    n = 2000
    line = "x: '" + "ab\x07 {{ bad }} " * n + "'"
    found = [Diagnostic("l.yaml", 1, 9 + 14 * i, Severity.ERROR, "PD214", "bad") for i in range(n)]
    counting = _Counting(module._CONTROL)
    monkeypatch.setattr(module, "_CONTROL", counting)
    out = render(found, "text", {"l.yaml": line}).split("\n\n")
    assert counting.chars <= n * module._WINDOW
    _, src, caret = out[n // 2].splitlines()
    assert "\x07" not in src and "\ufffd" in src
    at = caret.index("^")
    assert src[at : at + 3] == "{{ "  # the caret under the placeholder


def test_text_long_lines_are_windowed_around_the_column() -> None:
    line = "when: " + "x" * 500 + "BAD" + "y" * 500
    d = Diagnostic("l.yaml", 1, 507, Severity.ERROR, "PD301", "here")
    _, src, caret, _, _ = render([d], "text", {"l.yaml": line}).splitlines()
    assert len(src) < 140 and src.count("…") == 2
    assert src[caret.index("^")] == "B"


def test_text_color_only_when_asked() -> None:
    assert "\x1b[" not in render([ERR], "text", FILES)
    colored = render([ERR], "text", FILES, color=True)
    assert "\x1b[1;31merror\x1b[0m" in colored


# --- json ----------------------------------------------------------------------------------


def test_json_has_exactly_the_documented_keys() -> None:
    data = json.loads(render([ERR, WARN, INFO], "json"))
    assert [set(d) for d in data] == [
        {"file", "line", "column", "severity", "code", "message", "hint"}
    ] * 3
    assert data[0] == {
        "file": "policies/bot.yaml",
        "line": 3,
        "column": 9,
        "severity": "error",
        "code": "PD102",
        "message": "unknown kind 'Polcy'",
        "hint": "did you mean 'Policy'?",
    }
    assert data[1]["hint"] is None and data[2]["severity"] == "info"
    assert json.loads(render([], "json")) == []


# --- github --------------------------------------------------------------------------------


def test_github_commands_per_severity() -> None:
    lines = render([ERR, WARN, INFO], "github").splitlines()
    assert lines == [
        "::error file=policies/bot.yaml,line=3,col=9,title=PD102::"
        "unknown kind 'Polcy'%0Ahint: did you mean 'Policy'?",
        "::warning file=policies/bot.yaml,line=5,col=3,endLine=5,endColumn=7,title=PD501::"
        "rule 'x' can never match",
        "::notice file=policies/other.yaml,line=1,col=1,title=PD301::slow CEL path%0Ahint: fine",
    ]


def test_github_escaping() -> None:
    d = Diagnostic("dir,1/a:b.yaml", 2, 1, Severity.ERROR, "PD4%1", "100% sure,\r\nreally: yes")
    assert render([d], "github") == (
        "::error file=dir%2C1/a%3Ab.yaml,line=2,col=1,title=PD4%251::100%25 sure,%0D%0Areally: yes"
    )


# --- sarif ---------------------------------------------------------------------------------


def sarif(diagnostics: list[Diagnostic]) -> dict:
    return json.loads(render(diagnostics, "sarif"))


def test_sarif_is_schema_valid(shared_dir: Path) -> None:
    log = sarif([ERR, WARN, INFO, *load_text(b"a: \xff\n", "<weird name>.yaml").diagnostics])
    schema = json.loads((shared_dir / "schemas/sarif-schema-2.1.0.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert not list(validator.iter_errors(log))
    invalid = {**log, "runs": [{"results": []}]}  # the validator itself can say no
    assert list(validator.iter_errors(invalid))


def test_sarif_content() -> None:
    log = sarif([ERR, WARN, INFO, ERR])
    assert log["version"] == "2.1.0" and log["$schema"].startswith("https://")
    [run] = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "policyd" and driver["version"] == policyd.__version__
    assert driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == ["PD102", "PD301", "PD501"]
    assert [r["shortDescription"]["text"] for r in driver["rules"]] == [
        RULES["PD102"], RULES["PD301"], RULES["PD501"],
    ]  # fmt: skip
    first, warn, info, _ = run["results"]
    assert first["ruleId"] == "PD102" and first["level"] == "error"
    assert driver["rules"][first["ruleIndex"]]["id"] == "PD102"
    assert first["message"]["text"] == "unknown kind 'Polcy'\nhint: did you mean 'Policy'?"
    assert first["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "policies/bot.yaml", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 3, "startColumn": 9},
    }
    assert warn["level"] == "warning" and info["level"] == "note"
    assert warn["locations"][0]["physicalLocation"]["region"]["endColumn"] == 7


def test_sarif_uris() -> None:
    spaced = Diagnostic("my policies/a b.yaml", 1, 1, Severity.ERROR, "PD001", "m")
    absolute = Diagnostic("/srv/p/x.yaml", 1, 1, Severity.ERROR, "PD001", "m")
    a, b = (r["locations"][0]["physicalLocation"]["artifactLocation"]
            for r in sarif([spaced, absolute])["runs"][0]["results"])  # fmt: skip
    assert a == {"uri": "my%20policies/a%20b.yaml", "uriBaseId": "%SRCROOT%"}
    assert b == {"uri": "file:///srv/p/x.yaml"}


def test_rules_table() -> None:
    assert {f"PD{n:03d}" for n in range(1, 12)} <= set(RULES)
    assert rule_description("PD002") == RULES["PD002"]
    assert rule_description("PD207") == RULES["PD207"]
    assert rule_description("PD299") == RULES["PD2xx"]  # a family's fallback
    assert rule_description("XX9") == "A policyd diagnostic"


def test_unknown_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render([ERR], "xml")  # type: ignore[arg-type]


# --- the CI integrations shipped with the renderers ----------------------------------------

REPO = Path(__file__).resolve().parent.parent


def test_github_actions_example_runs_check_test_and_uploads_sarif() -> None:
    result = load_path(REPO / "examples/ci/github-actions.yml")
    assert result.ok, result.diagnostics
    [workflow] = result.documents
    assert "on" in workflow.data  # a YAML 1.2 string key, not the boolean YAML 1.1 makes it
    steps = workflow.data["jobs"]["policyd"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert "policyd check policies/ --format github" in runs
    assert "policyd test policies/" in runs
    assert any("--format sarif > policyd.sarif" in r for r in runs)
    assert any(s.get("uses", "").startswith("github/codeql-action/upload-sarif") for s in steps)


def test_pre_commit_hook_definition() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    [hook] = hooks
    assert hook["id"] == "policyd-check" and hook["entry"] == "policyd check"
    assert hook["language"] == "python" and hook["pass_filenames"] is False
    assert hook["args"] == ["policies/"] and re.search(hook["files"], "a/b.yml")
    assert not re.search(hook["files"], "a/b.json")
