"""Whole-text output checks: ``json_schema`` (parse and validate) and ``max_chars``.

Neither reports matched text: a schema failure names the schema rule that failed (taken
from the policy's schema, never from the output), a JSON syntax error its line and column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from policyd.guardrails._core import CheckStream, Finding, GuardrailConfigError

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\r?\n(.*?)\r?\n?```$", re.DOTALL)
_JSON_START = frozenset('{["-0123456789tfn')


def _json_finding(detail: str) -> Finding:
    return Finding("json_schema", -1, -1, "JSON_SCHEMA", None, detail)


def _pointer(path: Any) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


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
        self._validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
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
        errors = list(self._validator.iter_errors(document))
        if not errors:
            return []
        from jsonschema.exceptions import best_match

        error = best_match(errors)
        detail = f"schema rule {_pointer(error.schema_path)} failed"
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [k for k in error.validator_value if k not in error.instance]
            detail += f" (missing: {', '.join(map(str, missing))})"
        if len(errors) > 1:
            detail += f"; {len(errors) - 1} more error(s)"
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
