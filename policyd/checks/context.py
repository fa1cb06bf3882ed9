"""The request's attributes: built-ins, a policy's ``context:`` declarations, and cache keys.

:func:`check_context` checks each declared attribute's CEL type (PD211, PD212) and returns the
declarations every CEL expression of the policy compiles against; :func:`check_cache` checks
that cache keys name such attributes (PD213).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

from policyd import cel, document
from policyd.checks.base import BAD_CACHE_KEY, BAD_CONTEXT, NAME_CLASH, Checker, Path
from policyd.loader import Document
from policyd.words import suggest

# Request attributes every policy can read without declaring them.
BUILTIN_REQUEST: dict[str, Any] = {
    "id": "string",
    "model": "string",
    "messages": "list<map<string, dyn>>",
    "max_tokens": "int",
    "temperature": "double",
    "metadata": "map<string, dyn>",
    "input_tokens": "int",
    "input_chars": "int",
}
_SCALAR_TYPES = {"string", "int", "double", "bool", "bytes", "timestamp", "duration", "dyn"}
_TYPE_WORD = re.compile(r"[A-Za-z_]+")


def check_context(policy: document.Policy, doc: Document, checker: Checker) -> dict[str, Any]:
    """Check the ``context:`` declarations; return what the policy's CEL compiles against."""
    request: dict[str, Any] = dict(BUILTIN_REQUEST)
    for name, decl in policy.context.items():
        path: Path = ("context", name)
        if name in BUILTIN_REQUEST:
            checker.add(
                doc,
                path,
                NAME_CLASH,
                f"context attribute {name!r} is built in",
                f"request.{name} is always available as {BUILTIN_REQUEST[name]}; remove it",
                key=True,
            )
            continue
        for bad_path, bad in _bad_types(decl, path):
            checker.add(
                doc,
                bad_path,
                BAD_CONTEXT,
                f"unknown CEL type {bad!r}",
                _type_suggestion(bad)
                or "use string, int, double, bool, timestamp, duration, dyn, list<T>, "
                "map<string, T>, or a nested mapping of attributes",
            )
        request[name] = decl
    return {"request": request, "now": "timestamp"}


def _bad_types(decl: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(decl, dict):
        for key, sub in decl.items():
            yield from _bad_types(sub, (*path, key))
    elif not _valid_type(decl):
        yield path, decl


def _valid_type(text: str) -> bool:
    """A type the CEL compiler accepts (so check and compile agree: no 'uint', no 'float')."""
    try:
        cel.parse_type(text)
    except cel.CelError:
        return False
    return True


def _type_suggestion(text: str) -> str | None:
    """``list<strng>`` -> "did you mean 'list<string>'?"."""
    words = [w for w in _TYPE_WORD.findall(text) if w not in _SCALAR_TYPES | {"list", "map"}]
    close = difflib.get_close_matches(words[0], sorted(_SCALAR_TYPES), n=1) if words else []
    return f"did you mean {text.strip().replace(words[0], close[0], 1)!r}?" if close else None


def check_cache(
    policy: document.Policy, doc: Document, declarations: dict[str, Any], checker: Checker
) -> None:
    """Every cache key field names a request attribute, built in or declared."""
    request = declarations["request"]
    for i, rule in enumerate(policy.cache.rules):
        for j, attr in enumerate(rule.key):
            if attr not in request:
                checker.add(
                    doc,
                    ("cache", "rules", i, "key", j),
                    BAD_CACHE_KEY,
                    f"cache key field {attr!r} is not a request attribute",
                    suggest(attr, request)
                    or "use model, messages, max_tokens, temperature, "
                    "metadata or a declared context attribute",
                )
