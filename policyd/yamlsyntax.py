"""What a YAML syntax error says: PD001 and PD003 for the error PyYAML's parser raised.

Owns where such an error points (an unclosed bracket rather than the end of the file, the
tab that broke the indentation) and the hint for each kind of problem;
:class:`policyd.yaml12.FileReader` reports it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

from policyd.sourcemap import Lines, Node, SeqNode


def syntax_problem(
    exc: yaml.MarkedYAMLError, lines: Lines, unclosed: Sequence[Node]
) -> tuple[int, str, str, str]:
    """(offset, code, message, hint) for ``exc``; ``unclosed``: the flow collections
    still open when it was raised, innermost last."""
    problem = exc.problem or "invalid YAML"
    mark = exc.problem_mark or exc.context_mark
    if "end of stream" in problem and exc.context_mark is not None:
        mark = exc.context_mark  # point at the unclosed quote or bracket, not at the end
    index = _index(mark)
    text = lines.text
    if unclosed and index >= len(text.rstrip()):
        pair = "[]" if isinstance(unclosed[-1], SeqNode) else "{}"
        message = f"YAML syntax error: '{pair[0]}' is never closed"
        return unclosed[-1].start, "PD001", message, f"close it with '{pair[1]}'"
    line_start = lines.starts[lines.position(index).line - 1]
    indent = re.match(r"[ \t]*", text[line_start:])
    if indent and "\t" in indent.group():
        hint = "YAML forbids tabs for indentation; replace the tab with spaces"
        at = line_start + indent.group().index("\t")
        return at, "PD003", "tab character used for indentation", hint
    if text[index : index + 1] == "\t":
        hint = "replace the tab with a space"
        return index, "PD003", "tab character where YAML expects a space", hint
    context = ""
    if exc.context and exc.context_mark is not None:
        ctx = lines.position(exc.context_mark.index)
        context = f" ({exc.context} at line {ctx.line}, column {ctx.column})"
    return index, "PD001", f"YAML syntax error: {problem}{context}", _syntax_hint(problem)


_SYNTAX_HINTS = {
    "mapping values are not allowed": "quote the value if it contains ': ', or fix the indentation",
    "could not find expected ':'": "end the key with ':' and indent the line like its siblings",
    "expected <block end>": "fix the indentation: entries of one mapping or list line up",
    "did not find expected": "fix the indentation: every '-' item or 'key:' lines up",
    "end of stream": "a quote or bracket is not closed; look for the one that started it",
    "cannot start any token": "quote the value: '@' and '`' cannot start a plain scalar",
    "escape": "in double quotes write a backslash as \\\\, or use single quotes",
}


def _syntax_hint(problem: str) -> str:
    return next((h for k, h in _SYNTAX_HINTS.items() if k in problem), "fix the YAML syntax here")


def _index(mark: Any) -> int:
    return mark.index if mark is not None else 0
