"""CEL types: the static types the checker infers, and the values ``type()`` returns.

Static types are immutable :class:`CelType` values. Besides CEL's own types there is
a *record*: a declared set of fields (``{"tenant": {"id": "string"}}``) that is a
plain ``dict`` at run time; selecting an undeclared field of a record is a compile
error, where on ``map`` or ``dyn`` it is allowed. Declarations are written as CEL
type names (``"list<string>"``, ``"map<string, dyn>"``) or nested mappings.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from policyd.cel.errors import CelError

TypeDecl: TypeAlias = "str | Mapping[str, TypeDecl]"

PRIMITIVES = (
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "null_type",
    "timestamp",
    "duration",
    "dyn",
    "type",
)


@dataclass(frozen=True)
class CelType:
    """One static CEL type. ``params`` for list/map, ``fields`` for records."""

    kind: str
    params: tuple[CelType, ...] = ()
    fields: tuple[tuple[str, CelType], ...] = ()
    name: str = ""

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list<{self.params[0]}>"
        if self.kind == "map":
            return f"map<{self.params[0]}, {self.params[1]}>"
        if self.kind == "record":
            return self.name or "map<string, dyn>"
        return self.kind

    @property
    def cel_name(self) -> str:
        """The CEL type name, with records shown as the map they are at run time."""
        if self.kind == "record":
            return "map<string, dyn>"
        if self.kind in ("list", "map"):
            inner = ", ".join(p.cel_name for p in self.params)
            return f"{self.kind}<{inner}>"
        return self.kind

    def field(self, name: str) -> CelType | None:
        return self._by_name.get(name)

    @functools.cached_property
    def _by_name(self) -> dict[str, CelType]:
        """Fields by name, built on first use (a record may declare thousands)."""
        found: dict[str, CelType] = {}
        for key, value in self.fields:
            found.setdefault(key, value)  # the first of a repeated name, as a scan finds
        return found

    @functools.cached_property
    def field_names(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.fields)


INT = CelType("int")
UINT = CelType("uint")
DOUBLE = CelType("double")
BOOL = CelType("bool")
STRING = CelType("string")
BYTES = CelType("bytes")
NULL = CelType("null_type")
TIMESTAMP = CelType("timestamp")
DURATION = CelType("duration")
DYN = CelType("dyn")
TYPE = CelType("type")


def list_of(elem: CelType) -> CelType:
    return CelType("list", (elem,))


def map_of(key: CelType, value: CelType) -> CelType:
    return CelType("map", (key, value))


_BY_NAME = {name: CelType(name) for name in PRIMITIVES}
_BY_NAME["any"] = DYN


def _split_args(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_type(text: str) -> CelType:
    """Parse a CEL type name (``"list<map<string, dyn>>"``); raises :class:`CelError`."""
    clean = text.strip()
    if clean in _BY_NAME and clean not in ("uint", "type"):
        return _BY_NAME[clean]
    for prefix, arity in (("list<", 1), ("map<", 2)):
        if clean.startswith(prefix) and clean.endswith(">"):
            args = _split_args(clean[len(prefix) : -1])
            if len(args) != arity or not all(args):
                break
            parsed = [parse_type(a) for a in args]
            if arity == 1:
                return list_of(parsed[0])
            if parsed[0].kind not in ("string", "int", "bool", "dyn"):
                raise CelError(f"map keys must be string, int or bool, not {parsed[0]}")
            return map_of(parsed[0], parsed[1])
    raise CelError(
        f"unknown CEL type {text!r}: use string, int, double, bool, bytes, timestamp, "
        "duration, null_type, dyn, list<T> or map<K, V>"
    )


def from_declaration(decl: Any, name: str = "") -> CelType:
    """A declaration (type name or nested mapping of fields) as a type; bad names are dyn.

    Unknown type names are reported by ``policyd check`` where the declaration is
    written; here they degrade to ``dyn`` so one typo does not fail every expression.
    """
    if isinstance(decl, Mapping):
        fields = tuple(
            (str(key), from_declaration(value, f"{name}.{key}" if name else str(key)))
            for key, value in decl.items()
        )
        return CelType("record", fields=fields, name=name)
    if isinstance(decl, CelType):
        return decl
    try:
        return parse_type(str(decl))
    except CelError:
        return DYN


def is_dyn(t: CelType) -> bool:
    return t.kind == "dyn"


def as_map(t: CelType) -> CelType:
    """Records behave as ``map<string, dyn>`` wherever a map is expected."""
    return map_of(STRING, DYN) if t.kind == "record" else t


# --------------------------------------------------------------------------- type values


@dataclass(frozen=True)
class TypeValue:
    """A CEL type as a run-time value: what ``type(x)`` returns and ``int`` denotes."""

    name: str

    def __repr__(self) -> str:
        return self.name


TYPE_VALUES: dict[str, TypeValue] = {
    name: TypeValue(name)
    for name in (
        "int",
        "uint",
        "double",
        "bool",
        "string",
        "bytes",
        "null_type",
        "list",
        "map",
        "type",
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
    )
}
# Identifiers that denote a type when no variable of that name is declared.
TYPE_DENOTATIONS = {
    "int": "int",
    "uint": "uint",
    "double": "double",
    "bool": "bool",
    "string": "string",
    "bytes": "bytes",
    "null_type": "null_type",
    "list": "list",
    "map": "map",
    "type": "type",
    "google.protobuf.Timestamp": "google.protobuf.Timestamp",
    "google.protobuf.Duration": "google.protobuf.Duration",
}
