"""The standard CEL function and operator signatures policyd supports, and their unification.

Each :class:`Overload` has an id the code generator keys on (``add_int``,
``cmp_string``, ``size_list``, ...), parameter types that may use the type
variables ``A`` and ``B``, and a result type. ``member`` overloads are called as
methods (``s.startsWith(p)``); the receiver is the first parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from policyd.cel.types import (
    BOOL,
    BYTES,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    STRING,
    TIMESTAMP,
    TYPE,
    CelType,
    as_map,
    list_of,
    map_of,
)

A = CelType("typevar", name="A")
B = CelType("typevar", name="B")


@dataclass(frozen=True)
class Overload:
    id: str
    params: tuple[CelType, ...]
    result: CelType
    member: bool = False


def _ov(oid: str, params: list[CelType], result: CelType, member: bool = False) -> Overload:
    return Overload(oid, tuple(params), result, member)


_CMP = [
    _ov("cmp_int", [INT, INT], BOOL),
    _ov("cmp_double", [DOUBLE, DOUBLE], BOOL),
    _ov("cmp_int_double", [INT, DOUBLE], BOOL),
    _ov("cmp_double_int", [DOUBLE, INT], BOOL),
    _ov("cmp_bool", [BOOL, BOOL], BOOL),
    _ov("cmp_string", [STRING, STRING], BOOL),
    _ov("cmp_bytes", [BYTES, BYTES], BOOL),
    _ov("cmp_timestamp", [TIMESTAMP, TIMESTAMP], BOOL),
    _ov("cmp_duration", [DURATION, DURATION], BOOL),
]
_SIZE = [
    _ov("size_string", [STRING], INT),
    _ov("size_bytes", [BYTES], INT),
    _ov("size_list", [list_of(A)], INT),
    _ov("size_map", [map_of(A, B)], INT),
]
_TS_GETTERS = [
    "getFullYear",
    "getMonth",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
]
_BOTH_GETTERS = ["getHours", "getMinutes", "getSeconds", "getMilliseconds"]

OVERLOADS: dict[str, list[Overload]] = {
    "_+_": [
        _ov("add_int", [INT, INT], INT),
        _ov("add_double", [DOUBLE, DOUBLE], DOUBLE),
        _ov("add_string", [STRING, STRING], STRING),
        _ov("add_bytes", [BYTES, BYTES], BYTES),
        _ov("add_list", [list_of(A), list_of(A)], list_of(A)),
        _ov("add_timestamp_duration", [TIMESTAMP, DURATION], TIMESTAMP),
        _ov("add_duration_timestamp", [DURATION, TIMESTAMP], TIMESTAMP),
        _ov("add_duration", [DURATION, DURATION], DURATION),
    ],
    "_-_": [
        _ov("sub_int", [INT, INT], INT),
        _ov("sub_double", [DOUBLE, DOUBLE], DOUBLE),
        _ov("sub_timestamp", [TIMESTAMP, TIMESTAMP], DURATION),
        _ov("sub_timestamp_duration", [TIMESTAMP, DURATION], TIMESTAMP),
        _ov("sub_duration", [DURATION, DURATION], DURATION),
    ],
    "_*_": [_ov("mul_int", [INT, INT], INT), _ov("mul_double", [DOUBLE, DOUBLE], DOUBLE)],
    "_/_": [_ov("div_int", [INT, INT], INT), _ov("div_double", [DOUBLE, DOUBLE], DOUBLE)],
    "_%_": [_ov("mod_int", [INT, INT], INT)],
    "-_": [_ov("neg_int", [INT], INT), _ov("neg_double", [DOUBLE], DOUBLE)],
    "!_": [_ov("not", [BOOL], BOOL)],
    "_<_": _CMP,
    "_<=_": _CMP,
    "_>_": _CMP,
    "_>=_": _CMP,
    "_==_": [_ov("eq", [A, A], BOOL)],
    "_!=_": [_ov("eq", [A, A], BOOL)],
    "@in": [
        _ov("in_list", [A, list_of(A)], BOOL),
        _ov("in_map", [A, map_of(A, B)], BOOL),
    ],
    "_[_]": [
        _ov("index_list", [list_of(A), INT], A),
        _ov("index_map", [map_of(A, B), A], B),
    ],
    "_&&_": [_ov("and", [BOOL, BOOL], BOOL)],
    "_||_": [_ov("or", [BOOL, BOOL], BOOL)],
    "_?_:_": [_ov("cond", [BOOL, A, A], A)],
    "size": _SIZE + [Overload(o.id, o.params, o.result, True) for o in _SIZE],
    "contains": [_ov("contains", [STRING, STRING], BOOL, True)],
    "startsWith": [_ov("starts_with", [STRING, STRING], BOOL, True)],
    "endsWith": [_ov("ends_with", [STRING, STRING], BOOL, True)],
    "matches": [
        _ov("matches", [STRING, STRING], BOOL, True),
        _ov("matches", [STRING, STRING], BOOL),
    ],
    "lowerAscii": [_ov("lower_ascii", [STRING], STRING, True)],
    "upperAscii": [_ov("upper_ascii", [STRING], STRING, True)],
    "int": [
        _ov("int_int", [INT], INT),
        _ov("int_double", [DOUBLE], INT),
        _ov("int_string", [STRING], INT),
        _ov("int_timestamp", [TIMESTAMP], INT),
    ],
    "double": [
        _ov("double_double", [DOUBLE], DOUBLE),
        _ov("double_int", [INT], DOUBLE),
        _ov("double_string", [STRING], DOUBLE),
    ],
    "string": [
        _ov("string_string", [STRING], STRING),
        _ov("string_int", [INT], STRING),
        _ov("string_double", [DOUBLE], STRING),
        _ov("string_bool", [BOOL], STRING),
        _ov("string_bytes", [BYTES], STRING),
        _ov("string_timestamp", [TIMESTAMP], STRING),
        _ov("string_duration", [DURATION], STRING),
    ],
    "bool": [_ov("bool_bool", [BOOL], BOOL), _ov("bool_string", [STRING], BOOL)],
    "bytes": [_ov("bytes_bytes", [BYTES], BYTES), _ov("bytes_string", [STRING], BYTES)],
    "timestamp": [
        _ov("timestamp_timestamp", [TIMESTAMP], TIMESTAMP),
        _ov("timestamp_string", [STRING], TIMESTAMP),
        _ov("timestamp_int", [INT], TIMESTAMP),
    ],
    "duration": [
        _ov("duration_duration", [DURATION], DURATION),
        _ov("duration_string", [STRING], DURATION),
    ],
    "dyn": [_ov("dyn", [A], DYN)],
    "type": [_ov("type", [A], TYPE)],
}
for _name in _TS_GETTERS + _BOTH_GETTERS:
    OVERLOADS[_name] = [
        _ov(f"{_name}_timestamp", [TIMESTAMP], INT, True),
        _ov(f"{_name}_timestamp_tz", [TIMESTAMP, STRING], INT, True),
    ]
for _name in _BOTH_GETTERS:
    OVERLOADS[_name].append(_ov(f"{_name}_duration", [DURATION], INT, True))

# Functions the native compiler leaves to cel-python's evaluator (see fallback.py).
FALLBACK_FUNCTIONS = frozenset(_TS_GETTERS + _BOTH_GETTERS)

OPERATOR_SYMBOLS = {
    "_+_": "+",
    "_-_": "-",
    "_*_": "*",
    "_/_": "/",
    "_%_": "%",
    "-_": "-",
    "!_": "!",
    "_<_": "<",
    "_<=_": "<=",
    "_>_": ">",
    "_>=_": ">=",
    "_==_": "==",
    "_!=_": "!=",
    "@in": "in",
    "_[_]": "[]",
    "_&&_": "&&",
    "_||_": "||",
    "_?_:_": "?:",
}


def join(a: CelType, b: CelType) -> CelType | None:
    """The common type of two types, ``dyn`` where either is dynamic; None if incompatible."""
    if a == b:
        return a
    if a.kind == "dyn" or b.kind == "dyn":
        return DYN
    if a.kind == "record" or b.kind == "record":
        a, b = as_map(a), as_map(b)
        if a.kind == b.kind == "map":
            return map_of(STRING, DYN) if join(a.params[0], b.params[0]) else None
        return None
    if a.kind == b.kind and a.kind in ("list", "map"):
        params = [join(x, y) for x, y in zip(a.params, b.params, strict=True)]
        if any(p is None for p in params):
            return None
        return CelType(a.kind, tuple(p for p in params if p is not None))
    return None


def unify(pattern: CelType, actual: CelType, env: dict[str, CelType]) -> bool:
    """Does ``actual`` fit ``pattern``? Binds type variables in ``env``."""
    if pattern.kind == "typevar":
        bound = env.get(pattern.name)
        if bound is None:
            env[pattern.name] = actual
            return True
        joined = join(bound, actual)
        if joined is None:
            return False
        env[pattern.name] = joined
        return True
    if actual.kind == "dyn" or pattern.kind == "dyn":
        if actual.kind == "dyn":
            for param in pattern.params:  # bind variables inside, e.g. list(A) vs dyn
                unify(param, actual, env)
        return True
    if pattern.kind == "map":
        actual = as_map(actual)
    if pattern.kind != actual.kind:
        return False
    return all(unify(p, a, env) for p, a in zip(pattern.params, actual.params, strict=True))


def substitute(t: CelType, env: dict[str, CelType]) -> CelType:
    if t.kind == "typevar":
        return env.get(t.name, DYN)
    if t.params:
        return CelType(t.kind, tuple(substitute(p, env) for p in t.params))
    return t
