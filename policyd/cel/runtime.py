"""Run-time helpers for compiled expressions: CEL semantics over plain Python values.

Generated code uses plain Python operators where the checker proved the operand
types; everything else calls these helpers, which implement CEL rather than
Python: ``bool`` is not a number, ``1 == 1.0`` is true and ``"1" == 1`` false,
ints are 64-bit with overflow errors, division truncates toward zero, and wrong
types raise "no such overload". Errors are raised; ``and_``/``or_``/``all_``/
``exists_`` absorb them the way the CEL specification says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from policyd.cel import timeutil
from policyd.cel.errors import CelError, CostLimitExceeded, EvaluationError
from policyd.cel.types import TypeValue

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Exceptions that mean "this CEL expression errors" (never a bug in the caller's data flow).
ERRORS: tuple[type[BaseException], ...] = (
    CelError,
    KeyError,
    TypeError,
    IndexError,
    ZeroDivisionError,
    ValueError,
    OverflowError,
    AttributeError,
    RecursionError,
)

_KIND: dict[type, str] = {
    bool: "bool",
    int: "int",
    float: "double",
    str: "string",
    bytes: "bytes",
    type(None): "null_type",
    list: "list",
    tuple: "list",
    dict: "map",
    datetime: "timestamp",
    timedelta: "duration",
    TypeValue: "type",
}
_NUMERIC = ("int", "double")
_ORDERED = frozenset(["int", "double", "string", "bytes", "bool", "timestamp", "duration"])


def kind_of(value: Any) -> str:
    kind = _KIND.get(type(value))
    if kind is not None:
        return kind
    for cls, name in _KIND.items():  # subclasses; bool is listed before int
        if isinstance(value, cls):
            return name
    if isinstance(value, Mapping):
        return "map"
    return type(value).__name__


def to_eval_error(exc: BaseException, names: frozenset[str] = frozenset()) -> EvaluationError:
    """A raised Python exception as the CEL error it stands for.

    The message never quotes a value the expression was evaluated on: a missing key
    is named only when it is one of ``names`` (field names and string literals of
    the expression's own text); Python's own exception texts, which quote values
    (``invalid literal for int(): 'jane@example.com'``), are replaced by their kind.
    """
    if isinstance(exc, EvaluationError):
        return exc
    if isinstance(exc, CelError):
        return EvaluationError(exc.message)
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else None
        if isinstance(key, str) and key in names:
            return EvaluationError(f"no such key: {key!r}")
        return EvaluationError("no such key")
    if isinstance(exc, ZeroDivisionError):
        return EvaluationError("division by zero")
    if isinstance(exc, IndexError):
        return EvaluationError("index out of range")
    if isinstance(exc, RecursionError):
        return EvaluationError("expression too deep to evaluate")
    if isinstance(exc, (TypeError, AttributeError)):
        return EvaluationError(f"no such overload ({type(exc).__name__})")
    if isinstance(exc, OverflowError):
        return EvaluationError("value out of range")
    return EvaluationError(f"evaluation error ({type(exc).__name__})")


def no_overload(op: str, *args: Any) -> EvaluationError:
    kinds = ", ".join(kind_of(a) for a in args)
    return EvaluationError(f"no such overload: '{op}' applied to ({kinds})")


def raise_(message: str) -> Any:
    raise EvaluationError(message)


# --------------------------------------------------------------------------- logic


def as_bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise EvaluationError(f"no matching overload: expected bool, got {kind_of(value)}")


def not_(value: Any) -> bool:
    return not as_bool(value)


def _absorbing(operands: tuple[Callable[[], Any], ...], decisive: bool, op: str) -> bool:
    """CEL's commutative ``&&``/``||``: the ``decisive`` value wins over any error;
    otherwise the first error is raised; otherwise the other bool."""
    error: BaseException | None = None
    for operand in operands:
        try:
            value = operand()
        except CostLimitExceeded:
            raise
        except ERRORS as exc:
            error = error or exc
            continue
        if value is decisive:
            return decisive
        if value is not (not decisive):
            error = error or no_overload(op, value)
    if error is not None:
        raise error
    return not decisive


def and_(*operands: Callable[[], Any]) -> bool:
    """CEL ``&&``: false if any operand is false, else the first error, else true."""
    return _absorbing(operands, False, "&&")


def or_(*operands: Callable[[], Any]) -> bool:
    """CEL ``||``: true if any operand is true, else the first error, else false."""
    return _absorbing(operands, True, "||")


def all_(items: Iterable[Any], predicate: Callable[[Any], Any]) -> bool:
    return and_(*(lambda x=x: predicate(x) for x in items))


def exists_(items: Iterable[Any], predicate: Callable[[Any], Any]) -> bool:
    return or_(*(lambda x=x: predicate(x) for x in items))


def iter_range(value: Any) -> Any:
    """The values a macro iterates: list elements, or map keys."""
    kind = kind_of(value)
    if kind == "list":
        return value
    if kind == "map":
        return list(value)
    raise EvaluationError(f"cannot iterate over {kind}")


COST_LIMIT_MESSAGE = "evaluation cost limit exceeded (too many macro iterations)"
# A macro iteration costs one unit of the budget; a linear operation inside a macro
# body (``in`` on a list, ``==`` or ``+`` on lists and strings, ``contains()``...)
# costs one unit per LIST_UNIT elements or STRING_UNIT characters of its operand.
LIST_UNIT_SHIFT = 4  # 16 elements
STRING_UNIT_SHIFT = 10  # 1,024 characters


def take(budget: list[int], items: Any) -> Any:
    """Charge a macro's iterations to the evaluation's budget (bounds nested macros)."""
    budget[0] -= len(items)
    if budget[0] < 0:
        raise CostLimitExceeded(COST_LIMIT_MESSAGE)
    return items


def take_each(budget: list[int], items: Any, operands: Callable[[], tuple[Any, ...]]) -> Any:
    """Like :func:`take`, for a macro whose body runs linear operations on ``operands``
    that are the same in every iteration: each iteration is charged their weight."""
    try:
        values = operands()
    except ERRORS:  # the body meets the same error, or never evaluates the operand
        values = ()
    weight = 1
    for value in values:
        cls = type(value)
        if cls is str or cls is bytes:
            weight += len(value) >> STRING_UNIT_SHIFT
        elif cls is list or cls is dict or cls is tuple:
            weight += len(value) >> LIST_UNIT_SHIFT
    budget[0] -= len(items) * weight
    if budget[0] < 0:
        raise CostLimitExceeded(COST_LIMIT_MESSAGE)
    return items


def charge(budget: list[int], value: Any) -> Any:
    """Charge the operand of a linear operation inside a macro body to the budget.

    Without this, one macro whose body scans the request (``t in request.tags``)
    costs iterations x size while counting only the iterations."""
    cls = type(value)
    if cls is str or cls is bytes:
        budget[0] -= len(value) >> STRING_UNIT_SHIFT
    elif cls is list or cls is dict or cls is tuple:
        budget[0] -= len(value) >> LIST_UNIT_SHIFT
    else:
        return value
    if budget[0] < 0:
        raise CostLimitExceeded(COST_LIMIT_MESSAGE)
    return value


# --------------------------------------------------------------------------- equality


def eq(a: Any, b: Any) -> bool:
    ka, kb = kind_of(a), kind_of(b)
    if ka != kb:
        if ka in _NUMERIC and kb in _NUMERIC:
            return float(a) == float(b)
        return False
    if ka == "list":
        return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b, strict=False))
    if ka == "map":
        if len(a) != len(b):
            return False
        for key, value in a.items():
            found, other = map_find(b, key)
            if not found or not eq(value, other):
                return False
        return True
    return bool(a == b)


def ne(a: Any, b: Any) -> bool:
    return not eq(a, b)


_MISSING = object()


def map_find(mapping: Any, key: Any) -> tuple[bool, Any]:
    """Look a key up with CEL key equality (1 == 1.0 as a key; true is not 1)."""
    kind = kind_of(key)
    if kind == "double":
        if key != key or key != math.floor(key) or math.isinf(key):
            return False, None
        key, kind = int(key), "int"
    elif kind not in ("int", "string", "bool"):
        return False, None
    value = mapping.get(key, _MISSING)
    if value is _MISSING:
        return False, None
    if kind != "string" and (key is True or key is False or key in (0, 1)):
        # Python merges True/1 and False/0 as dict keys; CEL keeps them apart.
        for stored in mapping:
            if kind_of(stored) == kind and stored == key:
                return True, mapping[stored]
        return False, None
    return True, value


def in_list(item: Any, items: Any) -> bool:
    return any(eq(item, x) for x in items)


def in_map(item: Any, mapping: Any) -> bool:
    return map_find(mapping, item)[0]


def in_(item: Any, container: Any) -> bool:
    kind = kind_of(container)
    if kind == "list":
        return in_list(item, container)
    if kind == "map":
        return in_map(item, container)
    raise no_overload("in", item, container)


# --------------------------------------------------------------------------- ordering


def _ordered(op: str, a: Any, b: Any) -> tuple[Any, Any]:
    ka, kb = kind_of(a), kind_of(b)
    if ka == kb and ka in _ORDERED:
        return a, b
    if ka in _NUMERIC and kb in _NUMERIC:
        return float(a), float(b)
    raise no_overload(op, a, b)


def lt(a: Any, b: Any) -> bool:
    x, y = _ordered("<", a, b)
    return bool(x < y)


def le(a: Any, b: Any) -> bool:
    x, y = _ordered("<=", a, b)
    return bool(x <= y)


def gt(a: Any, b: Any) -> bool:
    x, y = _ordered(">", a, b)
    return bool(x > y)


def ge(a: Any, b: Any) -> bool:
    x, y = _ordered(">=", a, b)
    return bool(x >= y)


# --------------------------------------------------------------------------- arithmetic


def check_int(value: int) -> int:
    if INT64_MIN <= value <= INT64_MAX:
        return value
    raise EvaluationError("integer overflow")


def int_div(a: int, b: int) -> int:
    if b == 0:
        raise EvaluationError("division by zero")
    quotient = abs(a) // abs(b)
    return check_int(-quotient if (a < 0) != (b < 0) else quotient)


def int_mod(a: int, b: int) -> int:
    if b == 0:
        raise EvaluationError("modulus by zero")
    rest = abs(a) % abs(b)
    return -rest if a < 0 else rest


def float_div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def add(a: Any, b: Any) -> Any:
    ka, kb = kind_of(a), kind_of(b)
    if ka == kb:
        if ka == "int":
            return check_int(a + b)
        if ka in ("double", "string", "bytes"):
            return a + b
        if ka == "list":
            return [*a, *b]
        if ka == "duration":
            return timeutil.check_duration(a + b)
    elif ka == "timestamp" and kb == "duration":
        return timeutil.add_timestamp(a, b)
    elif ka == "duration" and kb == "timestamp":
        return timeutil.add_timestamp(b, a)
    raise no_overload("+", a, b)


def sub(a: Any, b: Any) -> Any:
    ka, kb = kind_of(a), kind_of(b)
    if ka == kb:
        if ka == "int":
            return check_int(a - b)
        if ka == "double":
            return a - b
        if ka == "timestamp":
            return timeutil.sub_timestamps(a, b)
        if ka == "duration":
            return timeutil.check_duration(a - b)
    elif ka == "timestamp" and kb == "duration":
        return timeutil.add_timestamp(a, -b)
    raise no_overload("-", a, b)


def mul(a: Any, b: Any) -> Any:
    ka, kb = kind_of(a), kind_of(b)
    if ka == kb == "int":
        return check_int(a * b)
    if ka == kb == "double":
        return a * b
    raise no_overload("*", a, b)


def div(a: Any, b: Any) -> Any:
    ka, kb = kind_of(a), kind_of(b)
    if ka == kb == "int":
        return int_div(a, b)
    if ka == kb == "double":
        return float_div(a, b)
    raise no_overload("/", a, b)


def mod(a: Any, b: Any) -> Any:
    if kind_of(a) == kind_of(b) == "int":
        return int_mod(a, b)
    raise no_overload("%", a, b)


def neg(a: Any) -> Any:
    kind = kind_of(a)
    if kind == "int":
        return check_int(-a)
    if kind == "double":
        return -a
    raise no_overload("-", a)


# --------------------------------------------------------------------------- access


def list_index(items: Any, index: Any) -> Any:
    kind = kind_of(index)
    if kind == "double":
        if not math.isfinite(index) or index != math.floor(index):  # floor(inf) raises
            raise EvaluationError("invalid list index: a double that is not an integer")
        index = int(index)
    elif kind != "int":
        raise no_overload("[]", items, index)
    if 0 <= index < len(items):
        return items[index]
    raise EvaluationError("index out of range")


def map_index(mapping: Any, key: Any) -> Any:
    found, value = map_find(mapping, key)
    if not found:
        raise KeyError(key)  # to_eval_error names it only if the expression's text does
    return value


def index(container: Any, key: Any) -> Any:
    kind = kind_of(container)
    if kind == "list":
        return list_index(container, key)
    if kind == "map":
        return map_index(container, key)
    raise no_overload("[]", container, key)


def select(value: Any, field: str) -> Any:
    if kind_of(value) == "map":
        return value[field]
    raise EvaluationError(f"type '{kind_of(value)}' does not support field selection")


def has(value: Any, field: str) -> bool:
    if kind_of(value) == "map":
        return field in value
    raise EvaluationError(f"has() does not apply to type '{kind_of(value)}'")


def make_map(*pairs: tuple[Any, Any]) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for key, value in pairs:
        if kind_of(key) not in ("int", "bool", "string"):
            raise EvaluationError(f"unsupported key type '{kind_of(key)}' in map literal")
        if map_find(result, key)[0]:
            raise EvaluationError(f"Failed with repeated key in map literal ({kind_of(key)})")
        if key in result:  # Python merges True/1 and False/0 as dict keys
            raise EvaluationError(
                "map literal mixes a bool key with an equal int key; "
                "policyd maps cannot hold both true/false and 1/0 as keys"
            )
        result[key] = value
    return result


def size(value: Any) -> int:
    if kind_of(value) in ("string", "bytes", "list", "map"):
        return len(value)
    raise no_overload("size", value)
