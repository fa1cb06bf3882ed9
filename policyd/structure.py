"""Structure check: a loaded YAML document -> a typed model object, or diagnostics.

Runs pydantic on each document and turns its errors into :class:`Diagnostic`
values pointing at the exact key or value in the file, with "did you mean"
hints for misspelt keys and values.
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from policyd import document
from policyd.diagnostics import Diagnostic, Severity
from policyd.loader import Document
from policyd.words import describe, suggest

__all__ = ["describe", "repair", "suggest", "to_model"]

Path = tuple[str | int, ...]

# Codes for structure problems (PD1xx).
UNKNOWN_KEY = "PD101"
WRONG_TYPE = "PD102"
MISSING_FIELD = "PD103"
INVALID_VALUE = "PD104"
UNKNOWN_API_VERSION = "PD105"
UNKNOWN_KIND = "PD106"

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "int_from_float": "a whole number",
}


def to_model(doc: Document) -> tuple[document.Document | None, list[Diagnostic]]:
    """Validate one document's structure; the typed object when it is valid."""
    data = doc.data
    api = data.get("apiVersion")
    kind = data.get("kind")
    if api != document.API_VERSION:
        where = ("apiVersion",) if "apiVersion" in data else ()
        message = "document has no apiVersion" if api is None else f"unknown apiVersion {api!r}"
        return None, [
            _diag(
                doc, where, UNKNOWN_API_VERSION, message, f"use apiVersion: {document.API_VERSION}"
            )
        ]
    cls = document.KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        where = ("kind",) if "kind" in data else ()
        message = "document has no kind" if kind is None else f"unknown kind {kind!r}"
        hint = suggest(str(kind), document.KINDS) if kind is not None else None
        return None, [
            _diag(
                doc,
                where,
                UNKNOWN_KIND,
                message,
                hint or f"kind is one of {', '.join(document.KINDS)}",
            )
        ]
    try:
        return cls.model_validate(data), []
    except ValidationError as exc:
        return None, _translate(doc, cls, exc.errors(include_url=False))


_MAX_REPAIRS = 8


def repair(doc: Document) -> tuple[document.Document | None, set[str]]:
    """A typed object for a document that failed :func:`to_model`, with the parts that
    failed removed, so the rest of it can still be checked (None when nothing valid is
    left), and the top-level keys something was removed under.

    A failing key is removed (the mapping that lacks a required key, for a missing one);
    inside a list, the whole list is removed, so every remaining list keeps its indices
    and diagnostics about it point at the right lines. The result is only ever checked,
    never compiled: ``check`` mutes reports that the removal itself could cause.
    """
    cls = document.KINDS.get(doc.data.get("kind"))
    removed: set[str] = set()
    if cls is None or doc.data.get("apiVersion") != document.API_VERSION:
        return None, removed
    data = copy.deepcopy(doc.data)
    for _ in range(_MAX_REPAIRS):
        try:
            return cls.model_validate(data), removed
        except ValidationError as exc:
            cuts = set()
            for error in exc.errors(include_url=False):
                path, union_at, _ = _data_path(data, error["loc"], error["type"])
                if union_at is not None:
                    path = union_at
                elif error["type"] == "missing":
                    path = path[:-1]
                first_index = next((i for i, p in enumerate(path) if isinstance(p, int)), None)
                if first_index is not None:
                    path = path[:first_index]
                if not path:
                    return None, removed
                cuts.add(path)
                removed.add(str(path[0]))
            for path in sorted(cuts, key=len):
                owner = _at(data, path[:-1])
                if isinstance(owner, dict):
                    owner.pop(path[-1], None)
    return None, removed


def _translate(doc: Document, cls: type[BaseModel], errors: Sequence[Any]) -> list[Diagnostic]:
    plain: list[tuple[Path, dict[str, Any]]] = []
    unions: dict[Path, list[tuple[Path, dict[str, Any], str]]] = {}
    for error in errors:
        path, union_at, branch = _data_path(doc.data, error["loc"], error["type"])
        if union_at is None:
            plain.append((path, error))
        else:
            unions.setdefault(union_at, []).append((path, error, branch))
    plain = _without_typo_echoes(cls, plain)
    out = [_diagnostic(doc, cls, path, error) for path, error in plain]
    for union_at, group in unions.items():
        inside = [(p, e) for p, e, _ in group if len(p) > len(union_at)]
        whole = [e for _, e, _ in group if isinstance((e.get("ctx") or {}).get("hint"), str)]
        if inside:
            # The value has the shape of one of the forms: report what is wrong inside it,
            # not that it fails every other form too.
            out.extend(_diagnostic(doc, cls, p, e) for p, e in inside)
        elif isinstance(_at(doc.data, union_at), dict) and len(whole) == 1:
            # A mapping that its mapping form refuses as a whole (a validator's problem,
            # with its fix): that problem, not "expected 'worst_case', or ..."
            out.append(_diagnostic(doc, cls, union_at, whole[0]))
        else:
            out.append(_union_diagnostic(doc, union_at, [(e, b) for _, e, b in group]))
    return out


def _without_typo_echoes(
    cls: type[BaseModel], plain: list[tuple[Path, dict[str, Any]]]
) -> list[tuple[Path, dict[str, Any]]]:
    """One misspelt key is one error: drop "missing key 'models'" where the same mapping has
    an unknown key close to it ('modles'); the unknown key's hint names the right one."""
    unknown: dict[Path, list[str]] = {}
    for path, error in plain:
        if error["type"] == "extra_forbidden" and path:
            unknown.setdefault(path[:-1], []).append(str(path[-1]))
    out = []
    for path, error in plain:
        if error["type"] == "missing" and path:
            typos = unknown.get(path[:-1], [])
            if difflib.get_close_matches(str(path[-1]), typos, n=1, cutoff=0.6):
                continue
        out.append((path, error))
    return out


def _diagnostic(
    doc: Document, cls: type[BaseModel], path: Path, error: dict[str, Any]
) -> Diagnostic:
    code, message, hint = _message(cls, path, error)
    if code == MISSING_FIELD:  # point at the mapping that lacks the key, by its own key
        return _diag(doc, path[:-1], code, message, hint, key=True)
    return _diag(doc, path, code, message, hint, key=code == UNKNOWN_KEY)


def _union_diagnostic(
    doc: Document, path: Path, group: list[tuple[dict[str, Any], str]]
) -> Diagnostic:
    """One value that matches none of a union's forms: one message listing the forms."""
    value = _at(doc.data, path)
    label = _label(path)
    choices: list[str] = []
    forms: list[str] = []
    for error, branch in group:
        if error["type"] == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            forms.insert(0, expected)
            choices += _literal_choices(expected)
        elif error["type"] in _TYPE_NAMES:
            forms.append(_form(branch) or _TYPE_NAMES[error["type"]])
        else:
            forms.append(str(error.get("msg", "a valid value")))
    forms = list(dict.fromkeys(forms))
    hint = suggest(value, choices) if isinstance(value, str) and choices else None
    keys = [f for _, b in group if (f := _form(b)) and isinstance(value, str)]
    if hint is None and any(f"{{{value}: ...}}" == k for k in keys):
        hint = f"{value} takes a value: write {{{value}: ...}}, e.g. {{{value}: 1h}}"
    if choices:
        message = f"invalid value {_show(value)} for {label}: expected {', or '.join(forms)}"
    else:
        message = f"{label} must be {' or '.join(forms)}, not {describe(value)}"
    return _diag(doc, path, INVALID_VALUE if choices else WRONG_TYPE, message, hint)


def _form(branch: str) -> str | None:
    """How a union branch that is a model looks in YAML: ``{rolling: ...}``."""
    cls = getattr(document, branch, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        return None
    required = [info.alias or name for name, info in cls.model_fields.items() if info.is_required()]
    return "{" + ", ".join(f"{name}: ..." for name in required) + "}" if required else None


def _literal_choices(expected: str) -> list[str]:
    return [c.strip().strip("'") for c in expected.replace(" or ", ",").split(",")]


def _label(path: Path) -> str:
    """How a message names the place: ``'timeout'``, ``item 2 of 'pii'``, ``the document``."""
    if not path:
        return "the document"
    last = path[-1]
    if isinstance(last, int):
        owner = next((p for p in reversed(path[:-1]) if isinstance(p, str)), None)
        return f"item {last + 1} of {owner!r}" if owner else f"item {last + 1}"
    return repr(last)


_YAML11_BOOLS = {"yes": True, "y": True, "on": True, "no": False, "n": False, "off": False}
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _message(
    cls: type[BaseModel], path: Path, error: dict[str, Any]
) -> tuple[str, str, str | None]:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    label = _label(path)
    if kind == "extra_forbidden":
        field = path[-1] if path else "document"
        known = _field_names(cls, path[:-1])
        hint = suggest(str(field), known)
        if hint is None and known:
            hint = "allowed keys here: " + ", ".join(sorted(known))
        return UNKNOWN_KEY, f"unknown key {field!r}", hint
    if kind == "missing":
        field = path[-1] if path else "document"
        owner = _label(path[:-1])
        return MISSING_FIELD, f"{owner} is missing required key {field!r}", f"add {field}: ..."
    if kind in _TYPE_NAMES:
        return (
            WRONG_TYPE,
            f"{label} must be {_TYPE_NAMES[kind]}, not {describe(value)}",
            _type_hint(kind, value) or _shape_hint(kind, value, _models_at(cls, path)),
        )
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        hint = suggest(value, _literal_choices(expected)) if isinstance(value, str) else None
        return INVALID_VALUE, f"invalid value {_show(value)} for {label}: expected {expected}", hint
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        limit = ctx.get(key)
        limit = f"{limit:g}" if isinstance(limit, float) else limit
        return INVALID_VALUE, f"{label} must be {words} {limit}, not {_number(value)}", None
    if kind in ("too_short", "too_long"):
        bound = ctx.get("min_length" if kind == "too_short" else "max_length")
        one, many = (
            ("entry", "entries") if ctx.get("field_type") == "Dictionary" else ("item", "items")
        )
        what = one if bound == 1 else many
        need = f"at least {bound}" if kind == "too_short" else f"at most {bound}"
        return INVALID_VALUE, f"{label} needs {need} {what}, not {ctx.get('actual_length')}", None
    if kind == "string_too_short":
        return INVALID_VALUE, f"{label} must not be empty", None
    if kind == "string_too_long":
        limit = ctx.get("max_length")
        return INVALID_VALUE, f"{label} is longer than {limit} characters", "shorten it"
    if kind == "string_pattern_mismatch" and isinstance(value, str):
        return (
            INVALID_VALUE,
            f"invalid name {value!r} for {label}",
            "names use letters, digits, '.', '_' and '-', and start with a letter or digit",
        )
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    hint = ctx.get("hint") if isinstance(ctx.get("hint"), str) else None
    return INVALID_VALUE, f"{label}: {message}", hint


def _type_hint(kind: str, value: Any) -> str | None:
    if kind == "string_type" and isinstance(value, bool):
        return f'quote it ("{str(value).lower()}") if you mean the text'
    if kind == "bool_type" and isinstance(value, str) and value.lower() in _YAML11_BOOLS:
        meant = "true" if _YAML11_BOOLS[value.lower()] else "false"
        return f"policy files are YAML 1.2, where only true and false are booleans: write {meant}"
    if kind in ("int_type", "float_type") and isinstance(value, str):
        number = value.strip().strip("$%").replace(",", "").replace("_", "")
        try:
            float(number)
        except ValueError:
            return None
        if number == value.strip():
            return f"remove the quotes: {number}"
        return f"write a plain number: {number}"
    return None


def _shape_hint(kind: str, value: Any, models: list[type[BaseModel]]) -> str | None:
    """For a scalar written where a list or a mapping goes: the shape to write instead."""
    if isinstance(value, dict | list) or value is None:
        return None
    written = _number(value) if not isinstance(value, str) else value
    if kind == "list_type":
        return f"write a list: [{written}]"
    if kind in ("model_type", "model_attributes_type", "dict_type") and len(models) == 1:
        required = [i.alias or n for n, i in models[0].model_fields.items() if i.is_required()]
        if len(required) == 1:
            return f"write {{{required[0]}: {written}}}"
        if required:
            return "write a mapping with " + ", ".join(f"{r}: ..." for r in required)
    return None


def _models_at(cls: Any, path: Path) -> list[type[BaseModel]]:
    """The model classes a value at ``path`` of a ``cls`` document may be."""
    current: list[Any] = [cls]
    for part in path:
        current = [t for tp in current for t in _step(tp, part)]
    found = [t for tp in current for t in _unwrap(tp)]
    return [t for t in found if isinstance(t, type) and issubclass(t, BaseModel)]


def _number(value: Any) -> str:
    raw = getattr(value, "raw", None)
    return raw if isinstance(raw, str) else repr(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _data_path(data: Any, loc: Sequence[Any], kind: str) -> tuple[Path, Path | None, str]:
    """Map a pydantic error location onto the document data.

    Returns the data path, the data path of the union whose branch tag pydantic put in the
    location (or None), and that branch tag.
    """
    path: list[str | int] = []
    node = data
    union_at: Path | None = None
    branch = ""
    last = len(loc) - 1
    for i, part in enumerate(loc):
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif i == last and kind == "missing":
            path.append(part)
        elif isinstance(node, dict) and part == "for_" and "for" in node:
            path.append("for")
            node = node["for"]
        elif union_at is None:
            union_at, branch = tuple(path), str(part)
    return tuple(path), union_at, branch


def _at(data: Any, path: Path) -> Any:
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _field_names(cls: Any, path: Path) -> set[str]:
    """Field names (aliases) allowed at ``path`` of a document of type ``cls``."""
    return {
        info.alias or name for m in _models_at(cls, path) for name, info in m.model_fields.items()
    }


def _unwrap(tp: Any) -> list[Any]:
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        out = []
        for arg in get_args(tp):
            out.extend(_unwrap(arg))
        return out
    value = getattr(tp, "__value__", None)  # TypeAliasType
    if value is not None:
        return _unwrap(value)
    return [tp]


def _step(tp: Any, part: str | int) -> list[Any]:
    out = []
    for inner in _unwrap(tp):
        origin = get_origin(inner)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            for name, info in inner.model_fields.items():
                if part in (name, info.alias):
                    out.append(info.annotation)
        elif origin is dict:
            out.append(get_args(inner)[1])
        elif origin is list:
            out.append(get_args(inner)[0])
    return out


def _diag(
    doc: Document,
    path: Path,
    code: str,
    message: str,
    hint: str | None,
    *,
    key: bool = False,
    severity: Severity = Severity.ERROR,
) -> Diagnostic:
    pos = doc.source_map.key(path) if key else doc.source_map.value(path)
    return Diagnostic(doc.file, pos.line, pos.column, severity, code, message, hint)
