"""Prompt template placeholders (PD214): every ``{{ path }}`` names a declared request
attribute, checked like a CEL path, with "did you mean".

A placeholder is a dotted path from the request's root (``{{ tenant.id }}``, never
``{{ request.tenant.id }}``). It may go into a declared record's fields and stops at
``dyn`` or ``map<...>`` (any key); it cannot go into a scalar or index a list. The
positions point into the inline ``template`` or into the prompt file itself.
"""

from __future__ import annotations

import re
from pathlib import Path as FsPath
from typing import Any

from policyd import document
from policyd.checks.base import UNKNOWN_PLACEHOLDER, Checker, Path
from policyd.diagnostics import Diagnostic, Severity
from policyd.loader import Document
from policyd.sourcemap import Lines
from policyd.words import listing, suggest

# ``{{ attr.path }}``: what the prompts stage fills in from the request.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")


def check_templates(
    policy: document.Policy,
    doc: Document,
    declarations: dict[str, Any],
    texts: dict[tuple[str, str], str],
    checker: Checker,
) -> None:
    """Every placeholder of every prompt version whose text could be read."""
    request: dict[str, Any] = declarations["request"]
    base_dir = FsPath(doc.file).parent
    problems: dict[str, tuple[str, str] | None] = {}  # each placeholder path judged once
    for prompt_name, prompt in policy.prompts.items():
        for version, spec in prompt.versions.items():
            text = texts.get((prompt_name, version))
            if text is None:
                continue
            found: list[tuple[int, str, str]] = []  # (offset, message, hint)
            for match in PLACEHOLDER.finditer(text):
                dotted = match.group(1)
                if dotted not in problems:
                    problems[dotted] = placeholder_problem(dotted, request)
                problem = problems[dotted]
                if problem is not None:
                    message = f"prompt {prompt_name!r} version {version!r}: {problem[0]}"
                    found.append((match.start(1), message, problem[1]))
            if not found:
                continue
            # positions found in one pass over the text, not one per placeholder (quadratic)
            path: Path = ("prompts", prompt_name, "versions", version)
            if spec.template is not None:
                where = (*path, "template")
                offsets = [offset for offset, _, _ in found]
                positions = doc.source_map.scalar_offsets(where, offsets)
                for (_, message, hint), pos in zip(found, positions, strict=True):
                    checker.add(doc, where, UNKNOWN_PLACEHOLDER, message, hint, at=pos)
                continue
            file = str(base_dir / (spec.file or ""))
            lines = Lines.by_newline(text)
            for offset, message, hint in found:
                pos = lines.position(offset)
                checker.diagnostics.append(
                    Diagnostic(
                        file, pos.line, pos.column, Severity.ERROR, UNKNOWN_PLACEHOLDER,
                        message, hint,
                    )
                )  # fmt: skip


def placeholder_problem(dotted: str, request: dict[str, Any]) -> tuple[str, str] | None:
    """(message, hint) when ``dotted`` is not a path into the declared request, else None."""
    parts = dotted.split(".")
    if parts[0] == "request" and parts[0] not in request:
        rest = ".".join(parts[1:]) or "tenant.id"
        return (
            f"placeholder {{{{ {dotted} }}}}: placeholders start at the request's attributes",
            f"write {{{{ {rest} }}}}",
        )
    node: Any = request
    for i, name in enumerate(parts):
        where = ".".join(parts[:i]) or "the request"
        if isinstance(node, dict):
            if name not in node:
                known = sorted(node)
                hint = suggest(name, known) or (
                    f"declare it under context: ({listing(known)} are known)"
                    if i == 0
                    else f"fields of {where}: {listing(known)}"
                )
                what = "request attribute" if i == 0 else f"field of {where}"
                return f"placeholder {{{{ {dotted} }}}}: unknown {what} {name!r}", hint
            node = node[name]
            continue
        text = str(node).strip()
        if text == "dyn" or text.startswith("map<"):
            return None
        if text.startswith("list<"):
            return (
                f"placeholder {{{{ {dotted} }}}}: {where} is a {text}; a placeholder cannot "
                "index a list",
                f"use {{{{ {where} }}}} for the whole list, or declare a record",
            )
        return (
            f"placeholder {{{{ {dotted} }}}}: {where} is a {text} and has no field {name!r}",
            f"write {{{{ {where} }}}}",
        )
    return None
