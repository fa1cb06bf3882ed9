"""PolicyTest cases checked at ``check`` time, against the policy they test: each request
type-checked as ``decide()`` will check it (PD215), each ``expect`` path a path that
``decision.to_dict()`` (or the output verdict) can have (PD216), each recorded outcome's
model defined (PD201), and undeclared request attributes that look like a typo of a
declared one (PD503, a warning).
"""

from __future__ import annotations

import re
from typing import Any

from policyd import document
from policyd.checks.base import (
    TEST_REQUEST,
    UNDECLARED_TEST_ATTRIBUTE,
    UNKNOWN_EXPECT,
    UNKNOWN_MODEL,
    Checker,
    Path,
)
from policyd.diagnostics import Severity
from policyd.errors import RequestError
from policyd.loader import Document
from policyd.request import RequestShape, TokenCounter
from policyd.words import listing, suggest

# The shape of decision.to_dict() (and of the output verdict under "output"): a dict spec
# maps keys to specs; _Leaf is a value; _List(spec) is a list of spec; _Prompts is the
# map of the policy's prompts.


class _Leaf:
    """A value (text, number, boolean or null): no path goes further."""

    def __init__(self, expects: str | None = None) -> None:
        self.expects = expects  # "a boolean" for allowed/redacted; None: any value


class _List:
    def __init__(self, item: Any) -> None:
        self.item = item


class _Prompts:
    """``prompts``: the policy's prompt names, each a PromptChoice."""


_LEAF = _Leaf()
_BOOL = _Leaf("a boolean")
_TRACE = _List({"stage": _LEAF, "rule": _LEAF, "outcome": _LEAF, "detail": _LEAF})
_PROMPT_CHOICE = {"version": _LEAF, "rollout": _LEAF, "text": _LEAF}
_BUDGET_STATE = {
    k: _LEAF
    for k in [
        "name",
        "key",
        "state",
        "spent_usd",
        "limit_usd",
        "remaining_usd",
        "spent_tokens",
        "limit_tokens",
        "spent_requests",
        "limit_requests",
        "reserved_usd",
        "reserved_tokens",
        "retry_after_s",
        "window",
    ]
} | {"alerts": _List(_LEAF)}
_FINDING = {k: _LEAF for k in ("guardrail", "kind", "label", "rule", "start", "end", "detail")}
DECISION_SHAPE: dict[str, Any] = {
    "allowed": _BOOL,
    "blocked_by": _LEAF,
    "message": _LEAF,
    "model": _LEAF,
    "litellm_model": _LEAF,
    "tier": _LEAF,
    "fallbacks": _List(_LEAF),
    "retry": {
        "attempts": _LEAF,
        "backoff": _LEAF,
        "base_s": _LEAF,
        "max_s": _LEAF,
        "jitter": _LEAF,
        "on": _List(_LEAF),
    },
    "timeout_s": _LEAF,
    "cache": {"ttl_s": _LEAF, "key": _LEAF, "namespace": _LEAF, "rule": _LEAF},
    "prompts": _Prompts(),
    "budgets": _List(_BUDGET_STATE),
    "warnings": _List(_LEAF),
    "trace": _TRACE,
    "policy": {"name": _LEAF, "version": _LEAF, "digest": _LEAF},
    "output": {
        "allowed": _BOOL,
        "blocked_by": _LEAF,
        "message": _LEAF,
        "redacted": _BOOL,
        "findings": _List(_FINDING),
        "warnings": _List(_LEAF),
        "trace": _TRACE,
        "text": _LEAF,
    },
}
# Request fields of the OpenAI chat shape that a policy need not declare.
OPENAI_FIELDS = frozenset(
    [
        "messages",
        "model",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "n",
        "stream",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "tools",
        "tool_choice",
        "response_format",
        "seed",
        "metadata",
        "id",
        "input_tokens",
        "input_chars",
    ]
)
_FIELD_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def check_policy_test(
    test: document.PolicyTest,
    doc: Document,
    policy: document.Policy | None,
    declarations: dict[str, Any] | None,
    models: dict[str, document.ModelSpec] | None,
    checker: Checker,
) -> None:
    """Every case of ``test``; ``policy`` and its declarations are None when the test names
    a policy that does not exist (reported elsewhere), then only ``expect`` is checked."""
    shape = None if declarations is None else RequestShape(declarations["request"], TokenCounter())
    prompts = set(policy.prompts) if policy is not None else None
    for i, case in enumerate(test.cases):
        base: Path = ("cases", i)
        if shape is not None and declarations is not None:
            _check_request(case.request, shape, declarations["request"], doc, base, checker)
        for key, value in case.expect.items():
            problem = expect_problem(str(key), prompts, value)
            if problem is not None:
                message, hint = problem
                checker.add(doc, (*base, "expect", key), UNKNOWN_EXPECT, message, hint, key=True)
        record = case.record
        if (
            record is not None
            and record.model is not None
            and models is not None
            and record.model not in models
        ):
            checker.add(
                doc,
                (*base, "record", "model"),
                UNKNOWN_MODEL,
                f"unknown model {record.model!r}",
                suggest(record.model, models) or "name a model the policy defines",
            )


def _check_request(
    request: dict[str, Any],
    shape: RequestShape,
    declared: dict[str, Any],
    doc: Document,
    base: Path,
    checker: Checker,
) -> None:
    try:
        shape.prepare(request)
    except RequestError as exc:
        path: Path = (*base, "request")
        if exc.field:
            path = (*path, *_field_path(exc.field))
        checker.add(
            doc,
            path,
            TEST_REQUEST,
            f"test request: {exc}",
            "decide() would refuse this request with a RequestError; fix the value or the "
            "context: declaration",
        )
    for key in request:
        name = str(key)
        if name in declared or name in OPENAI_FIELDS:
            continue
        close = suggest(name, [d for d in declared if d not in OPENAI_FIELDS])
        if close:
            checker.add(
                doc,
                (*base, "request", name),
                UNDECLARED_TEST_ATTRIBUTE,
                f"test request attribute {name!r} is not declared: the policy never reads it",
                close,
                severity=Severity.WARNING,
                key=True,
            )


def _field_path(field: str) -> Path:
    """``messages[0].content`` -> ("messages", 0, "content")."""
    return tuple(int(index) if index else name for name, index in _FIELD_PART.findall(field))


def expect_problem(
    dotted: str, prompts: set[str] | None, value: Any = None
) -> tuple[str, str] | None:
    """(message, hint) when ``dotted`` cannot be a path into a decision's ``to_dict()``, or
    ``value`` can never equal what is there (a boolean expected as text, ``allowed: yes``;
    a list compared with a single value)."""
    parts = dotted.split(".")
    node: Any = DECISION_SHAPE
    i = 0
    while i < len(parts):
        where = ".".join(parts[:i])
        if isinstance(node, _Prompts):
            names = prompts
            for j in range(len(parts), i, -1):  # prompt names may contain dots
                key = ".".join(parts[i:j])
                if names is None or key in names:
                    break
            else:
                known = sorted(names or ())
                return (
                    f"expect path {dotted!r}: the policy has no prompt {parts[i]!r}",
                    suggest(parts[i], known) or f"prompts: {listing(known, 'none')}",
                )
            node, i = _PROMPT_CHOICE, j
            continue
        if isinstance(node, dict):
            name = parts[i]
            if name not in node:
                return (
                    f"expect path {dotted!r}: {where or 'a decision'} has no {name!r}",
                    suggest(name, node) or f"keys: {listing(node)}",
                )
            node, i = node[name], i + 1
            continue
        if isinstance(node, _List):
            if not parts[i].isdigit():
                return (
                    f"expect path {dotted!r}: {where} is a list; index it with a number",
                    f"write {where}.0.{'.'.join(parts[i:])}",
                )
            node, i = node.item, i + 1
            continue
        return (
            f"expect path {dotted!r}: {where} is a value and has no {parts[i]!r}",
            f"expect {where} itself",
        )
    if isinstance(node, _Leaf) and node.expects and not isinstance(value, bool):
        return (
            f"expect {dotted}: {value!r} can never match: {dotted} is true or false",
            "write true or false (YAML 1.2: yes, no, on and off are text)",
        )
    if isinstance(node, _List) and value is not None and not isinstance(value, list):
        return (
            f"expect {dotted}: {value!r} can never match: {dotted} is a list (lists compare whole)",
            f"write a list, e.g. [{value}], or expect one item: {dotted}.0",
        )
    return None
