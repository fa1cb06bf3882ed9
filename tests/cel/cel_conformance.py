"""Run the CEL specification's conformance cases through policyd.cel and cel-python.

Cases come from ``../shared/cel-conformance/*.textproto`` (``SimpleTestFile``s).
Each case is *skipped* with a stated reason when it needs something policy
conditions do not have (protobuf messages, ``uint``, sub-microsecond time), else
it is run and *passes* when the value (compared with its CEL type) or the
presence of an evaluation error matches the expectation.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cel_textproto import parse_textproto

from policyd import cel
from policyd.cel.types import TypeValue

ERROR = object()  # expected: an evaluation error


class Skip(Exception):
    pass


@dataclass(frozen=True)
class Case:
    file: str
    section: str
    name: str
    expr: str
    disable_check: bool
    type_env: dict[str, Any]
    bindings: dict[str, Any]
    expected: Any  # a value, or ERROR
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.file}/{self.section}/{self.name}"


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _value(msg: dict[str, list[Any]]) -> Any:
    """A conformance ``Value`` message as a plain Python value."""
    if "int64_value" in msg:
        return int(msg["int64_value"][0])
    if "uint64_value" in msg:
        raise Skip("uint64 values (policyd has no uint)")
    if "double_value" in msg:
        raw = msg["double_value"][0]
        if isinstance(raw, str):
            return {"Infinity": math.inf, "-Infinity": -math.inf, "inf": math.inf}.get(
                raw, math.nan
            )
        return float(raw)
    if "string_value" in msg:
        return _text(msg["string_value"][0])
    if "bytes_value" in msg:
        return bytes(msg["bytes_value"][0])
    if "bool_value" in msg:
        return msg["bool_value"][0] in ("true", True, 1)
    if "null_value" in msg:
        return None
    if "list_value" in msg:
        return [_value(v) for v in msg["list_value"][0].get("values", [])]
    if "map_value" in msg:
        entries = msg["map_value"][0].get("entries", [])
        return {_value(e["key"][0]): _value(e["value"][0]) for e in entries}
    if "type_value" in msg:
        return TypeValue(_text(msg["type_value"][0]))
    if "object_value" in msg:
        any_msg = msg["object_value"][0]
        if "type.googleapis.com/google.protobuf.Duration" in any_msg:
            d = any_msg["type.googleapis.com/google.protobuf.Duration"][0]
            seconds = d.get("seconds", [0])[0]
            nanos = d.get("nanos", [0])[0]
            return timedelta(seconds=seconds, microseconds=nanos // 1000)
        raise Skip("protobuf message values")
    raise Skip(f"unsupported value kind {sorted(msg)}")


def _type(msg: dict[str, list[Any]]) -> Any:
    """A conformance ``Type`` message as a policyd type declaration."""
    if "primitive" in msg:
        name = msg["primitive"][0]
        table = {"STRING": "string", "INT64": "int", "DOUBLE": "double", "BOOL": "bool"}
        table["BYTES"] = "bytes"
        if name not in table:
            raise Skip(f"{name} declarations (policyd has no uint)")
        return table[name]
    if "map_type" in msg:
        m = msg["map_type"][0]
        return f"map<{_type(m['key_type'][0])}, {_type(m['value_type'][0])}>"
    if "list_type" in msg:
        return f"list<{_type(msg['list_type'][0]['elem_type'][0])}>"
    if "null" in msg:
        return "null_type"
    if "message_type" in msg:
        name = _text(msg["message_type"][0])
        known = {"google.protobuf.Duration": "duration", "google.protobuf.Timestamp": "timestamp"}
        if name in known:
            return known[name]
        raise Skip("protobuf message declarations")
    if "well_known" in msg:
        known = {"DURATION": "duration", "TIMESTAMP": "timestamp", "ANY": "dyn"}
        return known.get(msg["well_known"][0], "dyn")
    return "dyn"


_MESSAGE_SYNTAX = re.compile(
    r"[A-Z][A-Za-z0-9_.]*\s*\{|TestAllTypes|google\.protobuf\.(?!Timestamp\b|Duration\b)"
)
_UINT = re.compile(r"\d[uU]\b|\buint\b")
_NANOS = re.compile(r"\.\d{7,9}Z|\d+ns\b")


def _case(file: str, section: str, test: dict[str, list[Any]]) -> Case:
    expr = _text(test["expr"][0])
    name = _text(test["name"][0])
    skip = None
    type_env: dict[str, Any] = {}
    bindings: dict[str, Any] = {}
    expected: Any = None
    try:
        if "container" in test or _MESSAGE_SYNTAX.search(expr):
            raise Skip("protobuf messages")
        if _UINT.search(expr):
            raise Skip("uint (policyd has no unsigned integers)")
        if _NANOS.search(expr):
            raise Skip("sub-microsecond times (Python datetime/timedelta hold microseconds)")
        for decl in test.get("type_env", []):
            type_env[_text(decl["name"][0])] = _type(decl["ident"][0]["type"][0])
        for binding in test.get("bindings", []):
            bindings[_text(binding["key"][0])] = _value(binding["value"][0]["value"][0])
        if "eval_error" in test:
            expected = ERROR
        elif "value" in test:
            expected = _value(test["value"][0])
        else:
            raise Skip("no expected value")
    except Skip as exc:
        skip = str(exc)
    disable = test.get("disable_check", ["false"])[0] in ("true", True)
    return Case(file, section, name, expr, disable, type_env, bindings, expected, skip)


def load_cases(folder: Path) -> list[Case]:
    cases = []
    for path in sorted(folder.glob("*.textproto")):
        data = parse_textproto(path.read_text(encoding="utf-8"))
        for section in data.get("section", []):
            sname = _text(section["name"][0])
            for test in section.get("test", []):
                cases.append(_case(path.stem, sname, test))
    return cases


def same(expected: Any, actual: Any) -> bool:
    """Equal values of the same CEL type (1 is not 1.0 is not true; NaN equals NaN)."""
    if isinstance(expected, float):
        if not isinstance(actual, float):
            return False
        if math.isnan(expected):
            return math.isnan(actual)
        return expected == actual and math.copysign(1, expected) == math.copysign(1, actual)
    if type(expected) is not type(actual):
        return False
    if isinstance(expected, list):
        return len(expected) == len(actual) and all(map(same, expected, actual))
    if isinstance(expected, dict):
        if len(expected) != len(actual):
            return False
        for key, value in expected.items():
            match = [k for k in actual if type(k) is type(key) and k == key]
            if not match or not same(value, actual[match[0]]):
                return False
        return True
    return bool(expected == actual)


def outcome(case: Case, run: Any) -> tuple[str, str]:
    """('pass'|'fail', detail) for one engine's attempt at a case."""
    try:
        actual = run(case)
    except cel.EvaluationError as exc:
        if case.expected is ERROR:
            return "pass", ""
        return "fail", f"evaluation error {exc}, expected {case.expected!r}"
    except cel.CompileError as exc:
        return "fail", f"compile error {exc}"
    except Exception as exc:  # an engine bug: report it as a failure, never crash the run
        return "fail", f"{type(exc).__name__}: {exc}"
    if case.expected is ERROR:
        return "fail", f"returned {actual!r}, expected an error"
    if same(case.expected, actual):
        return "pass", ""
    return "fail", f"returned {actual!r}, expected {case.expected!r}"


def run_policyd(case: Case) -> Any:
    decls = dict(case.type_env)
    if case.disable_check:
        for name in case.bindings:
            decls.setdefault(name, "dyn")
    expr = cel.compile(case.expr, decls, check=not case.disable_check)
    return expr.evaluate(case.bindings)


def run_celpy(case: Case) -> Any:
    import celpy
    from celpy.evaluation import CELEvalError

    from policyd.cel.fallback import from_cel, to_cel

    saved = sys.getrecursionlimit()
    try:
        env = celpy.Environment()
    finally:
        sys.setrecursionlimit(saved)
    try:
        ast = env.compile(case.expr)
    except Exception as exc:
        raise cel.CompileError(
            str(exc).splitlines()[0], code="PD301", source=case.expr, offset=0
        ) from None
    program = env.program(ast)
    try:
        result = program.evaluate({k: to_cel(v) for k, v in case.bindings.items()})
    except CELEvalError as exc:
        raise cel.EvaluationError(str(exc.args[0] if exc.args else exc)) from None
    return from_cel(result)


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def applicable(self) -> int:
        return self.passed + self.failed

    @property
    def rate(self) -> float:
        return self.passed / self.applicable if self.applicable else 0.0


def run_all(cases: list[Case]) -> Iterator[tuple[Case, tuple[str, str], tuple[str, str]]]:
    """(case, policyd outcome, cel-python outcome); skipped cases give ('skip', reason)."""
    for case in cases:
        if case.skip is not None:
            yield case, ("skip", case.skip), ("skip", case.skip)
            continue
        yield case, outcome(case, run_policyd), outcome(case, run_celpy)


_ = (datetime, timezone)  # timestamps arrive through the type declarations
