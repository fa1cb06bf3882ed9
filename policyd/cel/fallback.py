"""The slow path: evaluate an expression with cel-python's interpreter.

Used per expression for what the native compiler does not cover (the timestamp
and duration accessors such as ``getHours()``), or if generating Python fails.
Plain values are converted to cel-python's types for each call and results back.
Operators and standard functions are bound to policyd's own run-time helpers so
that both paths give the same, specification-following results; cel-python
keeps the tree walking, macros, ``&&``/``||`` and the accessors.

cel-python quirks handled here: creating an ``Environment`` sets the process-wide
recursion limit (restored at once), and its parser is a process-wide singleton.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from policyd.cel import analysis, runtime, stdlib, syntax
from policyd.cel.codegen import MAX_ITERATIONS
from policyd.cel.errors import CompileError, CostLimitExceeded, EvaluationError
from policyd.cel.types import TYPE_VALUES, TypeValue

_OVERRIDES: dict[str, Callable[..., Any]] = {
    "_==_": runtime.eq,
    "_!=_": runtime.ne,
    "_<_": runtime.lt,
    "_<=_": runtime.le,
    "_>_": runtime.gt,
    "_>=_": runtime.ge,
    "_+_": runtime.add,
    "_-_": runtime.sub,
    "_*_": runtime.mul,
    "_/_": runtime.div,
    "_%_": runtime.mod,
    "-_": runtime.neg,
    "!_": runtime.not_,
    "_in_": runtime.in_,
    "_[_]": runtime.index,
    "size": runtime.size,
    "contains": stdlib.contains,
    "startsWith": stdlib.starts_with,
    "endsWith": stdlib.ends_with,
    "matches": stdlib.matches,
    "lowerAscii": stdlib.lower_ascii,
    "upperAscii": stdlib.upper_ascii,
    "int": stdlib.to_int,
    "double": stdlib.to_double,
    "string": stdlib.to_string,
    "bool": stdlib.to_bool,
    "bytes": stdlib.to_bytes,
    "timestamp": stdlib.to_timestamp,
    "duration": stdlib.to_duration,
}


def to_cel(value: Any) -> Any:
    """A plain Python value as cel-python's wrapper types."""
    from celpy import celtypes as ct

    kind = runtime.kind_of(value)
    if kind == "bool":
        return ct.BoolType(value)
    if kind == "int":
        return ct.IntType(value)
    if kind == "double":
        return ct.DoubleType(value)
    if kind == "string":
        return ct.StringType(value)
    if kind == "bytes":
        return ct.BytesType(value)
    if kind == "list":
        return ct.ListType([to_cel(v) for v in value])
    if kind == "map":
        return ct.MapType({to_cel(k): to_cel(v) for k, v in value.items()})
    if kind == "timestamp":
        return ct.TimestampType(value)
    if kind == "duration":
        return ct.DurationType(value)
    if kind == "type":
        return _CELPY_TYPES().get(value.name, value)
    return value


def from_cel(value: Any) -> Any:
    """A cel-python value as plain Python (lists, dicts, aware datetimes, timedeltas)."""
    from celpy import celtypes as ct

    if isinstance(value, (ct.BoolType, bool)):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, list):
        return [from_cel(v) for v in value]
    if isinstance(value, dict):
        return {from_cel(k): from_cel(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return datetime.combine(value.date(), value.timetz()).astimezone(UTC)
    if isinstance(value, timedelta):
        return timedelta(days=value.days, seconds=value.seconds, microseconds=value.microseconds)
    if isinstance(value, _TypeFunction):
        return TYPE_VALUES[value.cel_name]
    if isinstance(value, type):
        for name, cls in _CELPY_TYPES().items():
            if cls is value:
                return TYPE_VALUES[name]
    return value


def _CELPY_TYPES() -> dict[str, Any]:
    from celpy import celtypes as ct

    return {
        "int": ct.IntType,
        "uint": ct.UintType,
        "double": ct.DoubleType,
        "bool": ct.BoolType,
        "string": ct.StringType,
        "bytes": ct.BytesType,
        "list": ct.ListType,
        "map": ct.MapType,
        "null_type": type(None),
        "type": ct.TypeType,
        "google.protobuf.Timestamp": ct.TimestampType,
        "google.protobuf.Duration": ct.DurationType,
    }


class _TypeFunction:
    """A conversion override that still *is* the type when used as a value (``int``)."""

    def __init__(self, cel_name: str, func: Callable[..., Any]) -> None:
        self.cel_name = cel_name
        self.func = func
        self.cel_type = _CELPY_TYPES()[cel_name]

    def __call__(self, *args: Any) -> Any:
        return self.func(*args)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _TypeFunction):
            return self.cel_name == other.cel_name
        return bool(self.cel_type == other)

    def __hash__(self) -> int:
        return hash(self.cel_type)


_BUDGET = threading.local()  # the running evaluation's cost budget, per thread


def _bind(func: Callable[..., Any], names: frozenset[str]) -> Callable[..., Any]:
    from celpy.evaluation import CELEvalError

    def call(*args: Any) -> Any:
        for arg in args:
            if isinstance(arg, CELEvalError):
                return arg
        budget: list[int] | None = getattr(_BUDGET, "n", None)
        plain = [from_cel(a) for a in args]
        if budget is not None:  # every call (so every macro iteration that calls one) counts
            budget[0] -= 1
            for value in plain:  # converting a list costs per element here, not per 16
                budget[0] -= len(value) if isinstance(value, (list, dict)) else 0
                runtime.charge(budget, value)
            if budget[0] < 0:
                raise CostLimitExceeded(runtime.COST_LIMIT_MESSAGE)
        try:
            return to_cel(func(*plain))
        except runtime.ERRORS as exc:
            return CELEvalError(runtime.to_eval_error(exc, names).message, _Worded, None)

    return call


def _get_milliseconds(value: Any, *tz: Any) -> Any:
    """Duration milliseconds are the 0-999 component (cel-python returns the total)."""
    from celpy.evaluation import function_getMilliseconds

    if isinstance(value, timedelta) and not tz:
        micros = value // timedelta(microseconds=1)
        part = abs(micros) // 1000 % 1000
        return to_cel(-part if micros < 0 else part)
    return function_getMilliseconds(value, *tz)


def _logical(absorbing: bool) -> Callable[[Any, Any], Any]:
    """CEL ``&&`` (absorbing false) or ``||`` (absorbing true) over values or error values.

    cel-python lets a non-bool through (``'text' && true`` is ``'text'``); CEL does not.
    """
    from celpy import celtypes as ct
    from celpy.evaluation import CELEvalError

    def combine(x: Any, y: Any) -> Any:
        for v in (x, y):
            if isinstance(v, ct.BoolType) and bool(v) is absorbing:
                return ct.BoolType(absorbing)
        for v in (x, y):
            if isinstance(v, CELEvalError):
                return v
        for v in (x, y):
            if not isinstance(v, ct.BoolType):
                return CELEvalError(f"no such overload: expected bool, got {runtime.kind_of(v)}")
        return ct.BoolType(not absorbing)

    return combine


class _Worded(Exception):
    """Marks a cel-python error value whose message policyd wrote (it quotes no value)."""


def _functions(names: frozenset[str]) -> dict[str, Any]:
    bound: dict[str, Any] = {name: _bind(f, names) for name, f in _OVERRIDES.items()}
    bound["getMilliseconds"] = _get_milliseconds
    bound["_&&_"] = _logical(absorbing=False)
    bound["_||_"] = _logical(absorbing=True)
    for name in ("int", "double", "string", "bool", "bytes"):
        bound[name] = _TypeFunction(name, bound[name])
    return bound


def _patch_placeholders(tree: Any, placeholders: dict[str, str]) -> None:
    from lark import Token, Tree

    stack = [tree]
    while stack:
        node = stack.pop()
        for i, child in enumerate(node.children):
            if isinstance(child, Tree):
                stack.append(child)
            elif isinstance(child, Token) and str(child) in placeholders:
                node.children[i] = Token(child.type, placeholders[str(child)])


class CelpyProgram:
    """One expression prepared for cel-python's interpreter."""

    def __init__(self, source: str, names: frozenset[str]) -> None:
        import celpy

        syntax._lark_parser()  # hands policyd's parser to cel-python before it builds its own
        saved = sys.getrecursionlimit()
        try:
            env = celpy.Environment()
        finally:
            sys.setrecursionlimit(saved)  # cel-python raises it process-wide
        text, placeholders = syntax._hide_backticks(source)
        try:
            tree = syntax._lark_parser().parse(text)
        except Exception as exc:  # pragma: no cover - the native parser already accepted it
            raise CompileError(
                f"cel-python cannot parse this expression: {exc}",
                code="PD301",
                source=source,
                offset=0,
            ) from None
        _patch_placeholders(tree, placeholders)
        self.names = names
        self.text_names = analysis.text_names(syntax.parse(source))
        self.runner = env.program(tree, functions=_functions(self.text_names))

    def evaluate(self, activation: Mapping[str, Any]) -> Any:
        from celpy.evaluation import CELEvalError, CELUnsupportedError

        context = {name: to_cel(activation[name]) for name in self.names if name in activation}
        budget = _BUDGET.n = [MAX_ITERATIONS]
        try:
            result = self.runner.evaluate(context)
        except EvaluationError:
            raise
        except CELEvalError as exc:
            raise _error(exc, self.text_names) from None
        except CELUnsupportedError:
            raise EvaluationError("unsupported operation on the slow path") from None
        except RecursionError:
            raise EvaluationError("expression too deep to evaluate on the slow path") from None
        except runtime.ERRORS as exc:
            raise runtime.to_eval_error(exc, self.text_names) from None
        finally:
            _BUDGET.n = None
        if budget[0] < 0:  # over budget even if an && or || absorbed the error
            raise CostLimitExceeded(runtime.COST_LIMIT_MESSAGE)
        if isinstance(result, CELEvalError):
            raise _error(result, self.text_names)
        return from_cel(result)


def _error(exc: Exception, names: frozenset[str]) -> EvaluationError:
    """cel-python's error in policyd's words, never quoting a value: policyd's own
    messages pass; a missing key is named only if the expression's text names it;
    any other cel-python text is cut before its first quoted or bracketed part."""
    message = str(exc.args[0]) if exc.args else "evaluation error"
    if len(exc.args) > 1 and exc.args[1] is _Worded:
        return EvaluationError(message)
    missing = re.fullmatch(r"no such (?:member in mapping|key): '([^']*)'", message)
    if missing:
        return runtime.to_eval_error(KeyError(missing.group(1)), names)
    words = re.match(r"[A-Za-z_ ]*", message)
    lead = words.group(0).strip() if words else ""
    return EvaluationError(lead or "evaluation error")


__all__ = ["CelpyProgram", "TypeValue", "from_cel", "to_cel"]
