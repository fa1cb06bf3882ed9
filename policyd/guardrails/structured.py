"""Whole-text output checks: ``json_schema`` (parse and validate) and ``max_chars``.

Neither reports matched text: a schema failure names the schema rule that failed (taken
from the policy's schema, never from the output), a JSON syntax error its line and column.
Validation is bounded: schema ``pattern`` / ``patternProperties`` run on RE2 (a pattern
RE2 cannot run is a config error), documents nested deeper than ``MAX_DEPTH`` are
refused before validation, at most ``MAX_ERRORS`` errors are collected, and anything
that still goes wrong inside the validator is a verdict (a finding), never an exception.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import re2

from policyd.guardrails._core import CheckStream, Finding, GuardrailConfigError
from policyd.guardrails._regex import RE2_SYNTAX_URL, options

MAX_DEPTH = 64  # arrays/objects nested deeper than this are refused, not validated
MAX_ERRORS = 100  # schema errors collected before the verdict is given
_SCHEMA_DEPTH = 200  # how deep a policy's schema is walked for patterns

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\r?\n(.*?)\r?\n?```$", re.DOTALL)
_JSON_START = frozenset('{["-0123456789tfn')


def _json_finding(detail: str) -> Finding:
    return Finding("json_schema", -1, -1, "JSON_SCHEMA", None, detail)


def _pointer(path: Any) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _walk_patterns(node: Any, path: tuple[str | int, ...], depth: int = 0) -> Iterator[Any]:
    """``(path, pattern)`` for every ``pattern`` and ``patternProperties`` key in a schema."""
    if depth > _SCHEMA_DEPTH:
        return
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield (*path, key), value
            elif key == "patternProperties" and isinstance(value, Mapping):
                for pattern in value:
                    yield (*path, key, pattern), pattern
            yield from _walk_patterns(value, (*path, key), depth + 1)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk_patterns(item, (*path, i), depth + 1)


def schema_pattern_problems(schema: Any) -> list[tuple[tuple[str | int, ...], str, str]]:
    """``(path in the schema, message, hint)`` for each schema pattern RE2 cannot run."""
    problems = []
    for path, pattern in _walk_patterns(schema, ()):
        if not isinstance(pattern, str):
            continue
        try:
            re2.compile(pattern, options())
        except re2.error as exc:
            reason = exc.args[0] if exc.args else "invalid pattern"
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            problems.append(
                (
                    path,
                    f"json_schema pattern at {_pointer(path)} cannot run on RE2: {reason}",
                    "schema patterns run on RE2 (linear time): no lookaround or "
                    f"backreferences ({RE2_SYNTAX_URL})",
                )
            )
    return problems


class _Re2Patterns:
    """Schema patterns compiled once with RE2 (``re.search`` semantics, linear time)."""

    def __init__(self, schema: Any):
        self._compiled: dict[str, Any] = {}
        for _, pattern in _walk_patterns(schema, ()):
            if isinstance(pattern, str) and pattern not in self._compiled:
                self._compiled[pattern] = re2.compile(pattern, options())

    def search(self, pattern: str, text: str) -> bool:
        regex = self._compiled.get(pattern)
        if regex is None:  # a pattern only a $ref'd remote schema has: compile it now
            regex = self._compiled[pattern] = re2.compile(pattern, options())
        return regex.search(text) is not None


def _validator_class(cls: Any, patterns: _Re2Patterns) -> Any:
    """``cls`` with ``pattern``, ``patternProperties`` and ``additionalProperties`` on RE2."""
    from jsonschema import validators
    from jsonschema.exceptions import ValidationError

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
        if validator.is_type(instance, "string") and not patterns.search(patrn, instance):
            yield ValidationError("does not match the pattern")

    def pattern_properties(validator: Any, props: Any, instance: Any, schema: Any) -> Any:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in props.items():
            for k, v in instance.items():
                if patterns.search(patrn, k):
                    yield from validator.descend(v, subschema, path=k, schema_path=patrn)

    def additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Any:
        if not validator.is_type(instance, "object"):
            return
        props = schema.get("properties", {})
        pats = schema.get("patternProperties", {})
        extras = [
            k for k in instance if k not in props and not any(patterns.search(p, k) for p in pats)
        ]
        if validator.is_type(extra, "object"):
            for k in extras:
                yield from validator.descend(instance[k], extra, path=k)
        elif not extra and extras:
            yield ValidationError("additional properties are not allowed")

    return validators.extend(
        cls,
        {
            "pattern": pattern,
            "patternProperties": pattern_properties,
            "additionalProperties": additional_properties,
        },
    )


def _too_deep(document: Any) -> bool:
    """Is ``document`` nested deeper than MAX_DEPTH? (iterative: no recursion limit)"""
    stack = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return False


class JsonSchemaCheck:
    """The text must be one JSON document that validates against ``schema``."""

    __slots__ = ("_validator", "stream_limit", "strip_code_fences")

    def __init__(
        self,
        schema: Mapping[str, Any] | bool,
        *,
        strip_code_fences: bool = False,
        stream_limit: int = 1 << 20,
    ):
        if not isinstance(schema, Mapping | bool):
            raise GuardrailConfigError(
                f"json_schema must be a mapping (a JSON Schema), got {type(schema).__name__}",
                hint="write json_schema: {type: object, required: [name]}",
            )
        # imported here: jsonschema costs ~40 ms to import and most policies never need it
        import jsonschema
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for

        schema = dict(schema) if isinstance(schema, Mapping) else schema
        cls = validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except SchemaError as exc:
            where = _pointer(exc.path) if exc.path else "the top level"
            raise GuardrailConfigError(
                f"json_schema is not a valid JSON Schema at {where}: {exc.message}",
                hint="see https://json-schema.org/understanding-json-schema/",
            ) from None
        problems = schema_pattern_problems(schema)
        if problems:
            _, message, hint = problems[0]
            raise GuardrailConfigError(message, hint=hint)
        bounded = _validator_class(cls, _Re2Patterns(schema))
        self._validator = bounded(schema, format_checker=cls.FORMAT_CHECKER)
        self.strip_code_fences = strip_code_fences
        self.stream_limit = stream_limit

    def scan(self, text: str) -> list[Finding]:
        body = text.strip()
        if self.strip_code_fences and (fenced := _FENCE.match(body)):
            body = fenced.group(1)
        try:
            document = json.loads(body)
        except json.JSONDecodeError as exc:
            return [
                _json_finding(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
            ]
        except RecursionError:
            return [_json_finding("not valid JSON: nested too deeply")]
        except ValueError:  # a number of more than 4,300 digits
            return [_json_finding("not valid JSON: a number is too long to read")]
        if _too_deep(document):
            return [_json_finding(f"JSON nested deeper than {MAX_DEPTH} levels, not validated")]
        try:
            return self._validate(document)
        except RecursionError:
            return [_json_finding("schema validation nested too deeply")]
        except Exception as exc:  # a validator or format checker failing: a verdict
            return [_json_finding(f"schema validation failed ({type(exc).__name__})")]

    def _validate(self, document: Any) -> list[Finding]:
        errors = list(itertools.islice(self._validator.iter_errors(document), MAX_ERRORS + 1))
        if not errors:
            return []
        from jsonschema.exceptions import best_match

        more = len(errors) - 1
        error = best_match(errors[:MAX_ERRORS])
        detail = f"schema rule {_pointer(error.schema_path)} failed"
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [k for k in error.validator_value if k not in error.instance]
            detail += f" (missing: {', '.join(map(str, missing))})"
        if more >= MAX_ERRORS:
            detail += f"; {MAX_ERRORS} or more other errors"
        elif more:
            detail += f"; {more} more error(s)"
        return [_json_finding(detail)]

    def open_stream(self, overlap: int) -> CheckStream:
        return _JsonStream(self)


class _JsonStream:
    """Keeps the output (up to ``stream_limit`` chars) to validate it at the end; flags early
    when the first character already rules JSON out (``Sure! Here is...``)."""

    __slots__ = ("_check", "_done", "_parts", "_size", "_started")

    def __init__(self, check: JsonSchemaCheck):
        self._check = check
        self._parts: list[str] = []
        self._size = 0
        self._started = False
        self._done = False

    def feed(self, chunk: str, offset: int) -> list[Finding]:
        if self._done:
            return []
        self._size += len(chunk)
        if self._size > self._check.stream_limit:
            self._done, self._parts = True, []
            return [
                _json_finding(
                    f"output longer than {self._check.stream_limit} characters, "
                    "too long to validate"
                )
            ]
        self._parts.append(chunk)
        if not self._started and (head := chunk.lstrip()):
            self._started = True
            fence_ok = self._check.strip_code_fences and head[0] == "`"
            if head[0] not in _JSON_START and not fence_ok:
                self._done, self._parts = True, []
                return [_json_finding("not valid JSON: output does not start with a JSON value")]
        return []

    def finish(self) -> list[Finding]:
        if self._done:
            return []
        self._done = True
        text, self._parts = "".join(self._parts), []
        return self._check.scan(text)


def json_schema_check(
    schema: Mapping[str, Any] | bool, *, strip_code_fences: bool = False
) -> JsonSchemaCheck:
    """The text must parse as JSON and validate against ``schema`` (draft from ``$schema``,
    2020-12 by default; ``format`` is checked). An invalid schema raises
    :class:`GuardrailConfigError`."""
    return JsonSchemaCheck(schema, strip_code_fences=strip_code_fences)


class MaxCharsCheck:
    """Flags text longer than ``limit`` characters. The finding covers the characters past
    the limit, so ``redact`` truncates (with a ``[MAX_CHARS]`` marker)."""

    __slots__ = ("limit",)

    def __init__(self, limit: int):
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise GuardrailConfigError(
                f"max_chars must be a whole number >= 0, got {limit!r}",
                hint="write max_chars: 20000",
            )
        self.limit = limit

    def _finding(self, length: int) -> Finding:
        return Finding(
            "max_chars",
            self.limit,
            length,
            "MAX_CHARS",
            None,
            f"{length} characters, limit {self.limit}",
        )

    def scan(self, text: str) -> list[Finding]:
        return [self._finding(len(text))] if len(text) > self.limit else []

    def open_stream(self, overlap: int) -> CheckStream:
        return _MaxCharsStream(self)


class _MaxCharsStream:
    __slots__ = ("_check", "_fired")

    def __init__(self, check: MaxCharsCheck):
        self._check = check
        self._fired = False

    def feed(self, chunk: str, offset: int) -> list[Finding]:
        total = offset + len(chunk)
        if self._fired or total <= self._check.limit:
            return []
        self._fired = True
        return [self._check._finding(total)]

    def finish(self) -> list[Finding]:
        return []


def max_chars_check(limit: int) -> MaxCharsCheck:
    """A finding when the text is longer than ``limit`` characters."""
    return MaxCharsCheck(limit)
