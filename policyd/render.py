"""Renderers: diagnostics as text for people, or JSON, GitHub annotations, SARIF for machines.

Owns how a :class:`~policyd.diagnostics.Diagnostic` looks outside the library and the table of
rule descriptions (:data:`RULES`).  Diagnostics are rendered in the order given (callers sort
them with :func:`~policyd.diagnostics.sort_diagnostics`).  ``end_column`` is exclusive, as
in SARIF: a region from column 5 to end_column 9 underlines 4 characters.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any, Literal
from urllib.parse import quote

from policyd.diagnostics import Diagnostic, Severity
from policyd.errors import ConfigError

__all__ = ["INFORMATION_URI", "RULES", "Format", "render", "rule_description"]

Format = Literal["text", "json", "github", "sarif"]
INFORMATION_URI = "https://github.com/policyd/policyd"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

RULES: dict[str, str] = {
    "PD001": "The file is not valid YAML",
    "PD002": "A mapping has the same key twice",
    "PD003": "A tab is used where YAML needs spaces",
    "PD004": "The file is not UTF-8 text",
    "PD005": "The file is empty",
    "PD006": "The file exceeds a size, alias-expansion or nesting limit",
    "PD007": "A YAML tag other than the standard ones is used",
    "PD008": "A document is not a mapping",
    "PD009": "A mapping key is not a string",
    "PD010": "A directory has no YAML files",
    "PD011": "A path does not exist or cannot be read",
    "PD012": "The bundle has no Policy document",
    "PD101": "A key is not allowed here",
    "PD102": "A value has the wrong type",
    "PD103": "A required key is missing",
    "PD104": "A value is not one of the allowed values or out of range",
    "PD105": "The apiVersion is not policyd/v1",
    "PD106": "The kind is not Policy, ModelCatalog or PolicyTest",
    "PD201": "A tier target names an unknown model",
    "PD202": "A rule, default or downgrade names an unknown tier",
    "PD203": "A fallback is neither a model nor a tier",
    "PD204": "A rollout names an unknown prompt",
    "PD205": "Tier fallbacks form a cycle",
    "PD206": "A name is defined twice",
    "PD207": "A model id is defined twice",
    "PD208": "A PolicyTest names an unknown policy",
    "PD209": "A rollout names an unknown prompt version",
    "PD210": "A prompt file is missing, unreadable, or not a regular UTF-8 file up to 1 MiB",
    "PD211": "A name clashes with a built-in attribute or a model",
    "PD212": "A context attribute has an unknown CEL type",
    "PD213": "A cache key names an unknown request attribute",
    "PD214": "A prompt template placeholder names an unknown request attribute",
    "PD215": "A PolicyTest request has a value of the wrong type",
    "PD216": "A PolicyTest expect path no decision can have",
    "PD301": "A CEL expression does not parse",
    "PD302": "A CEL expression reads an unknown variable or attribute",
    "PD303": "A CEL expression applies an operator or function to the wrong types",
    "PD304": "A CEL expression calls an unknown function",
    "PD305": "A condition does not evaluate to a bool",
    "PD306": "A CEL expression is too large, deep or costly",
    "PD310": "A CEL expression runs on the slower cel-python evaluator",
    "PD401": "Rollout shares do not sum to 100 or are finer than 0.01%",
    "PD402": "Rollout schedule entries are out of time order",
    "PD403": "Budget alert thresholds are outside (0, 1] or unsorted",
    "PD404": "A time zone is not a known IANA name",
    "PD405": "A pattern cannot be compiled by RE2",
    "PD406": "A weighted tier has no positive weight",
    "PD407": "A guardrail's checks do not fit together",
    "PD408": "A guardrail's action does not fit its checks",
    "PD409": "A guardrail names an unknown message role",
    "PD410": "A USD budget limit applies to a model without a price",
    "PD501": "A routing rule can never match",
    "PD502": "A missing price or context window changes routing",
    "PD503": "A PolicyTest request attribute is not declared",
    "PD504": "A setting has no effect where it is written",
    "PD505": "A block budget can never admit a request without max_tokens to the default tier",
    "PD601": "A test case failed and the policy sets reload.require_tests",
    "PD602": "reload.require_tests is set but no PolicyTest covers the policy",
    "PD690": "A new revision could not be built at reload",
    # Families: the fallback for codes not listed one by one.
    "PD1xx": "A document does not match the policy schema",
    "PD2xx": "A name refers to something that does not exist or is defined twice",
    "PD3xx": "A CEL expression does not parse or type-check",
    "PD4xx": "A value is out of range or malformed",
    "PD5xx": "A policy is valid but probably not what was meant",
    "PD6xx": "A new revision was rejected at reload",
}


def rule_description(code: str) -> str:
    """One line describing ``code``: its own entry, else its family's, else a generic one."""
    return RULES.get(code) or RULES.get(code[:3] + "xx") or "A policyd diagnostic"


def render(
    diagnostics: Sequence[Diagnostic],
    fmt: Format,
    files: Mapping[str, str] | None = None,
    *,
    color: bool = False,
) -> str:
    """Diagnostics as one string in ``fmt`` (no trailing newline).

    ``files`` maps each displayed path to its text, so ``text`` can show the source line.
    """
    if fmt == "text":
        return _text(diagnostics, files or {}, color)
    if fmt == "json":
        return json.dumps([d.to_dict() for d in diagnostics], indent=2, ensure_ascii=False)
    if fmt == "github":
        return "\n".join(_github(d) for d in diagnostics)
    if fmt == "sarif":
        return json.dumps(_sarif(diagnostics), indent=2, ensure_ascii=False)
    raise ConfigError(f"unknown format {fmt!r}: expected text, json, github or sarif")


# --- text ----------------------------------------------------------------------------------

_ANSI = {"bold": "1", "error": "1;31", "warning": "1;33", "info": "1;36", "dim": "2", "hint": "32"}
_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")  # the breaks the loader counts lines by
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_WINDOW = 120  # longer source lines are shown around the column


def _paint(text: str, what: str, color: bool) -> str:
    return f"\x1b[{_ANSI[what]}m{text}\x1b[0m" if color else text


def _text(diagnostics: Sequence[Diagnostic], files: Mapping[str, str], color: bool) -> str:
    blocks = []
    split: dict[str, list[str] | None] = {}  # each file's lines, split once for all its reports
    for d in diagnostics:
        where = _paint(f"{d.file}:{d.line}:{d.column}:", "bold", color)
        severity = _paint(d.severity.value, d.severity.value, color)
        lines = [f"{where} {severity} {d.code}: {d.message}"]
        if d.file not in split:
            text = files.get(d.file)
            split[d.file] = None if text is None else _BREAK.split(text)
        lines.extend(_snippet(d, split[d.file], color))
        if d.hint:
            lines.append(f"  {_paint('hint:', 'hint', color)} {d.hint}")
        blocks.append("\n".join(lines))
    separator = "\n\n" if any("\n" in b for b in blocks) else "\n"  # one-liners stay compact
    return separator.join([*blocks, _summary(diagnostics)])


def _snippet(d: Diagnostic, lines: list[str] | None, color: bool) -> list[str]:
    if lines is None:
        return []
    if not 1 <= d.line <= len(lines):
        return []
    line = lines[d.line - 1]
    start = max(0, min(d.column - 1, len(line)) - _WINDOW // 2) if len(line) > _WINDOW else 0
    # only the window shown: replacing in all of a long line for each report was quadratic
    shown = _CONTROL.sub("\ufffd", line[start : start + _WINDOW])
    lead, tail = ("…" if start else ""), ("…" if start + _WINDOW < len(line) else "")
    width = 1
    if d.end_line in (None, d.line) and d.end_column and d.end_column > d.column:
        width = d.end_column - d.column
    column = d.column - 1 - start
    under = shown[column : column + width] or " "
    pad = "".join("\t" if c == "\t" else " " * _cells(c) for c in lead + shown[:column])
    carets = "^" * max(1, sum(_cells(c) for c in under))
    gutter = str(d.line)
    bar = _paint(" |", "dim", color)
    return [
        f"{_paint(' ' + gutter, 'dim', color)}{bar} {lead}{shown}{tail}",
        f" {' ' * len(gutter)}{bar} {pad}{_paint(carets, d.severity.value, color)}",
    ]


def _cells(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _summary(diagnostics: Sequence[Diagnostic]) -> str:
    if not diagnostics:
        return "no problems found"
    counts = {s: sum(d.severity is s for d in diagnostics) for s in Severity}
    parts = [
        f"{n} {s.value}" if s is Severity.INFO else _plural(n, s.value)
        for s, n in counts.items()
        if n
    ]
    return f"{', '.join(parts)} in {_plural(len({d.file for d in diagnostics}), 'file')}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- GitHub workflow commands --------------------------------------------------------------

_COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(d: Diagnostic) -> str:
    props = {"file": _posix(d.file), "line": d.line, "col": d.column}
    if d.end_line is not None:
        props["endLine"] = d.end_line
    if d.end_column is not None:
        props["endColumn"] = d.end_column
    props["title"] = d.code
    head = ",".join(f"{k}={_escape_property(str(v))}" for k, v in props.items())
    body = d.message + (f"\nhint: {d.hint}" if d.hint else "")
    return f"::{_COMMANDS[d.severity]} {head}::{_escape_data(body)}"


# --- SARIF 2.1.0 ---------------------------------------------------------------------------

_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _posix(path: str) -> str:
    return path.replace(os.sep, "/") if os.sep != "/" else path


def _artifact(path: str) -> dict[str, str]:
    if os.path.isabs(path):
        return {"uri": PurePath(path).as_uri()}
    return {"uri": quote(_posix(path), safe="/"), "uriBaseId": "%SRCROOT%"}


def _sarif(diagnostics: Sequence[Diagnostic]) -> dict[str, Any]:
    import policyd

    codes: dict[str, Severity] = {}
    for d in diagnostics:
        codes.setdefault(d.code, d.severity)
    order = {code: i for i, code in enumerate(sorted(codes))}
    rules = [
        {
            "id": code,
            "shortDescription": {"text": rule_description(code)},
            "defaultConfiguration": {"level": _LEVELS[codes[code]]},
        }
        for code in order
    ]
    results = []
    for d in diagnostics:
        region: dict[str, int] = {"startLine": d.line, "startColumn": max(1, d.column)}
        if d.end_line is not None:
            region["endLine"] = d.end_line
        if d.end_column is not None:
            region["endColumn"] = d.end_column
        location = {"physicalLocation": {"artifactLocation": _artifact(d.file), "region": region}}
        results.append(
            {
                "ruleId": d.code,
                "ruleIndex": order[d.code],
                "level": _LEVELS[d.severity],
                "message": {"text": d.message + (f"\nhint: {d.hint}" if d.hint else "")},
                "locations": [location],
            }
        )
    driver = {
        "name": "policyd",
        "informationUri": INFORMATION_URI,
        "version": policyd.__version__,
        "rules": rules,
    }
    run = {"tool": {"driver": driver}, "columnKind": "unicodeCodePoints", "results": results}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
