"""Requests: check an app's request against the policy's declared context, count tokens.

A request is a plain mapping in the OpenAI chat shape plus the attributes the
policy declares under ``context``. :class:`RequestShape` is compiled once per
policy; per request it checks only the fields that are present (a missing
attribute is not an error: a condition reading it simply does not match) and
adds ``input_tokens`` and ``input_chars`` (counted by :mod:`policyd.tokens`).
A shape's ``prepare`` is generated Python, one function per policy: the
declared checks written out field by field, each taking the exact type in a
line and calling the general checker (whose words every refusal uses) only
for anything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from policyd.errors import RequestError
from policyd.fields import MAX_TOKENS
from policyd.tokens import ESTIMATE as ESTIMATE
from policyd.tokens import PER_MESSAGE, TokenCounter, content_chars
from policyd.tokens import count_text as count_text
from policyd.words import describe

Checker = Callable[[Any, str], None]


def _type_checker(decl: Any) -> Checker:
    """A function that raises RequestError when a value does not have the CEL type ``decl``."""
    if isinstance(decl, dict):
        fields = {name: _type_checker(sub) for name, sub in decl.items()}

        checks = tuple(fields.items())

        def check_record(value: Any, where: str) -> None:
            if value.__class__ is not dict and not isinstance(value, Mapping):
                raise RequestError(f"must be a mapping, not {_kind(value)}", where)
            for name, check in checks:
                field = value.get(name)
                if field is not None:
                    check(field, f"{where}.{name}")

        return check_record
    text = decl.strip()
    if text.startswith("list<"):
        item = _type_checker(text[5:-1])
        # elements of exactly this class need no check (the common list<string> case)
        exact_item = {"string": str, "int": int, "double": float, "bool": bool}.get(
            text[5:-1].strip(), _Never
        )

        def check_list(value: Any, where: str) -> None:
            if not isinstance(value, list | tuple):
                raise RequestError(f"must be a list, not {_kind(value)}", where)
            for i, element in enumerate(value):
                if element.__class__ is not exact_item:
                    item(element, f"{where}[{i}]")

        return check_list
    if text.startswith("map<"):
        value_check = _type_checker(_map_value_type(text))

        def check_map(value: Any, where: str) -> None:
            if not isinstance(value, Mapping):
                raise RequestError(f"must be a mapping, not {_kind(value)}", where)
            # the position comes with the item: looking each key up again was quadratic
            for position, (key, element) in enumerate(value.items()):
                value_check(element, where + _step(key, position))

        return check_map
    expected = _SCALARS.get(text)
    if expected is None:  # dyn and anything unchecked
        return _accept
    types, label = expected
    exact = frozenset(types)  # the common case: exactly the type, no subclass

    def check_scalar(value: Any, where: str) -> None:
        if value.__class__ in exact:
            return
        if isinstance(value, bool) and bool not in types:
            raise RequestError(f"must be {label}, not a boolean", where)
        if not isinstance(value, types):
            raise RequestError(f"must be {label}, not {_kind(value)}", where)

    return check_scalar


def _map_value_type(text: str) -> str:
    """``V`` of ``map<K, V>`` ("" when the declaration names none: unchecked, like dyn).

    ``K`` is a scalar type name (a policy declaring any other key type does not load),
    so ``V`` is what follows the first comma, up to the closing ``>``.
    """
    return text.partition(",")[2][:-1]


def _accept(value: Any, where: str) -> None:
    return None


class _Never:
    """A class no request value has."""


_SCALARS: dict[str, tuple[tuple[type, ...], str]] = {
    "string": ((str,), "a string"),
    "int": ((int,), "an integer"),
    "uint": ((int,), "an integer"),
    "double": ((int, float), "a number"),
    "bool": ((bool,), "true or false"),
    "timestamp": ((datetime,), "a timestamp (datetime)"),
    "duration": ((timedelta,), "a duration (timedelta)"),
    "bytes": ((bytes,), "bytes"),
}


_kind = describe

#: Bounds on a request's structure, so that no stage meets a value it cannot
#: hash, encode, serialize or count (listed in the README, "Using the engine...").
MAX_DEPTH = 64
MAX_VALUES = 200_000
#: Largest token count a request may give in ``max_tokens`` or ``input_tokens``:
#: far above any context window, and small enough that tokens x price stays exact.
MAX_REQUEST_TOKENS = MAX_TOKENS
_INT64 = (-(2**63), 2**63 - 1)
_LEAVES = (float, bool, type(None), datetime, timedelta, bytes)


class _Refused(Exception):
    """A value scan_values refuses; ``path`` collects the field's steps, innermost first."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str | int] = []


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,39}")


def _name_like(key: str) -> bool:
    """A field name (``max_tokens``, ``gpt4o``, ``x-request-id``), not a token: an IBAN,
    an API key or an id mixes capitals with digits or holds many digits."""
    if not _PLAIN_KEY.fullmatch(key):
        return False
    digits = sum(ch.isdigit() for ch in key)
    return digits == 0 or (digits <= 4 and not any(ch.isupper() for ch in key))


def key_step(mapping: Mapping[Any, Any], key: Any) -> str:
    """How an error names a mapping's key: ``.tier`` for a name-like key; otherwise
    its position (``[key #2]``), since a key such as an e-mail address, an IBAN or an
    API key is request data."""
    position = next((i for i, k in enumerate(mapping) if k is key or k == key), 0)
    return _step(key, position)


def _step(key: Any, position: int) -> str:
    """:func:`key_step` of the key at ``position`` in its mapping."""
    return f".{key}" if isinstance(key, str) and _name_like(key) else f"[key #{position}]"


def _field(path: list[str | int]) -> str | None:
    text = "".join(f"[{s}]" if isinstance(s, int) else s for s in reversed(path))
    return (text[1:] if text.startswith(".") else text) or None


def _bad_text(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_SURROGATE = "is not valid Unicode text (it contains a lone surrogate)"
_PLAIN = frozenset([float, bool, type(None)])


def _leaf(value: Any) -> None:
    """Check a value that is not a plain list or dict (those are walked by _walk)."""
    cls = value.__class__
    if cls is str or isinstance(value, str):
        if _bad_text(value):
            raise _Refused(_SURROGATE)
    elif cls is int or (isinstance(value, int) and not isinstance(value, bool)):
        if not _INT64[0] <= value <= _INT64[1]:
            raise _Refused("integer does not fit 64 bits")
    elif not isinstance(value, _LEAVES):
        raise _Refused(
            "must be a JSON value (string, number, boolean, null, list or mapping), "
            f"not {_kind(value)}"
        )


def _walk(value: Any, depth: int, budget: list[int]) -> None:
    if depth >= MAX_DEPTH:
        raise _Refused(f"is nested more than {MAX_DEPTH} levels deep (or refers to itself)")
    budget[0] -= len(value)
    if budget[0] < 0:
        raise _Refused(f"the request holds more than {MAX_VALUES:,} values")
    if value.__class__ is dict or (value.__class__ is not list and isinstance(value, Mapping)):
        for key, item in value.items():
            if key.__class__ is not str:
                raise _Refused(f"has a key that is {_kind(key)}, not a string")
            if not key.isascii() and _bad_text(key):
                raise _Refused("has a key that is not valid Unicode text (a lone surrogate)")
            cls = item.__class__
            if (cls is str and (item.isascii() or not _bad_text(item))) or cls in _PLAIN:
                continue
            if cls is int and _INT64[0] <= item <= _INT64[1]:
                continue
            try:
                if cls is dict or cls is list or isinstance(item, Mapping | list | tuple):
                    _walk(item, depth + 1, budget)
                else:
                    _leaf(item)
            except _Refused as refused:
                refused.path.append(key_step(value, key))
                raise
        return
    for i, item in enumerate(value):
        cls = item.__class__
        if (cls is str and (item.isascii() or not _bad_text(item))) or cls in _PLAIN:
            continue
        if cls is int and _INT64[0] <= item <= _INT64[1]:
            continue
        try:
            if cls is dict or cls is list or isinstance(item, Mapping | list | tuple):
                _walk(item, depth + 1, budget)
            else:
                _leaf(item)
        except _Refused as refused:
            refused.path.append(i)
            raise


def scan_values(request: Mapping[str, Any]) -> None:
    """Refuse what no stage can handle, in one pass linear in the request's size.

    Keys must be strings; strings must be valid Unicode (no lone surrogates);
    integers must fit 64 bits; values must be JSON values (or the CEL scalars a
    policy can declare: timestamps, durations, bytes); nesting is at most
    :data:`MAX_DEPTH` deep (which also refuses cyclic structures) and there are
    at most :data:`MAX_VALUES` values. Errors name the field, never its value.
    """
    try:
        _walk(request, 0, [MAX_VALUES])
    except _Refused as refused:
        raise RequestError(refused.message, _field(refused.path)) from None
    except RecursionError:  # a deep structure below a low recursion limit
        raise RequestError(f"is nested more than {MAX_DEPTH} levels deep") from None


def _check_message(message: Any, i: int) -> None:
    """The OpenAI chat shape where stages rely on it: role text, content text or parts."""
    if message.__class__ is not dict and not isinstance(message, Mapping):
        raise RequestError("must be a mapping with role and content", f"messages[{i}]")
    role = message.get("role")
    if role is not None and not isinstance(role, str):
        raise RequestError(f"must be a string, not {_kind(role)}", f"messages[{i}].role")
    content = message.get("content")
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise RequestError(
            f"must be a string or a list of parts, not {_kind(content)}",
            f"messages[{i}].content",
        )
    for j, part in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        if not isinstance(part, Mapping):
            raise RequestError(f"must be a content part (a mapping), not {_kind(part)}", where)
        text = part.get("text")
        if text is not None and not isinstance(text, str):
            raise RequestError(f"must be a string, not {_kind(text)}", f"{where}.text")


def _check_tokens(request: Mapping[str, Any], name: str) -> None:
    value = request.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_REQUEST_TOKENS:
        raise RequestError(
            f"must be at most {MAX_REQUEST_TOKENS:,} tokens", name, hint="no model takes more"
        )


def _as_list(messages: Any) -> list[Any]:
    if not isinstance(messages, list | tuple):
        raise RequestError(f"must be a list of messages, not {_kind(messages)}", "messages")
    return list(messages)


def _not_a_request(request: Any) -> None:
    raise RequestError(
        f"a request must be a mapping (dict), not {_kind(request)}",
        hint="pass e.g. {'messages': [...], 'user': {'id': 'u1'}}",
    )


class RequestShape:
    """The declared request attributes of one policy, compiled to one checking function.

    ``prepare(request)`` returns a checked copy of the request with ``input_tokens``
    and ``input_chars`` set, or raises RequestError naming the field. It checks, in
    this order (the first problem found is the one reported): the request is a
    mapping; every value (:func:`scan_values`); ``messages`` and each message's chat
    shape; ``max_tokens`` and ``input_tokens`` in range; each declared attribute's
    type, in declaration order.
    """

    prepare: Callable[[Any], dict[str, Any]]
    python_source: str  # prepare's generated code, for reading and debugging

    def __init__(self, declarations: Mapping[str, Any], counter: TokenCounter) -> None:
        self.prepare, self.python_source = _generate(declarations, counter)


_SKIPPED = ("messages", "input_tokens", "input_chars")  # built in, checked on their own
_EXACT_ITEMS = {"string": str, "int": int, "double": float, "bool": bool}
_INLINE_DEPTH = 8  # records nested deeper are checked by their general checker


class _Source:
    """Lines of generated code, and the objects they name (checkers, classes)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {}

    def name(self, obj: Any) -> str:
        key = f"_k{len(self.names)}"
        self.names[key] = obj
        return key

    def add(self, indent: int, line: str) -> None:
        self.lines.append(" " * indent + line)


def _emit(src: _Source, decl: Any, var: str, where: str, indent: int, depth: int) -> None:
    """Lines checking ``var`` (not None) against ``decl``: the exact type inline, anything
    else handed to the general checker, which accepts it or raises with its words."""
    check = f"{src.name(_type_checker(decl))}({var}, {where!r})"
    if isinstance(decl, dict):
        if depth >= _INLINE_DEPTH:
            src.add(indent, check)
            return
        inner = f"_v{depth + 1}"
        src.add(indent, f"if {var}.__class__ is dict:")
        for name, sub in decl.items():
            src.add(indent + 4, f"{inner} = {var}.get({name!r})")
            src.add(indent + 4, f"if {inner} is not None:")
            _emit(src, sub, inner, f"{where}.{name}", indent + 8, depth + 1)
        src.add(indent + 4, "pass")
        src.add(indent, "else:")
        src.add(indent + 4, check)
        return
    text = decl.strip()
    if text.startswith("list<"):
        item = _EXACT_ITEMS.get(text[5:-1].strip())
        if item is None:
            src.add(indent, check)
            return
        src.add(indent, f"if {var}.__class__ is list:")
        src.add(indent + 4, f"for _e in {var}:")
        src.add(indent + 8, f"if _e.__class__ is not {src.name(item)}:")
        src.add(indent + 12, check)
        src.add(indent + 12, "break")
        src.add(indent, "else:")
        src.add(indent + 4, check)
        return
    if text.startswith("map<"):
        if _type_checker(_map_value_type(text)) is _accept:
            # map<K, dyn>: only the mapping itself is checked (each value is accepted)
            src.add(indent, f"if {var}.__class__ is not dict:")
            src.add(indent + 4, check)
        else:
            src.add(indent, check)
        return
    expected = _SCALARS.get(text)
    if expected is None:  # dyn and anything unchecked
        src.add(indent, "pass")
        return
    exact = " and ".join(f"{var}.__class__ is not {src.name(cls)}" for cls in expected[0])
    src.add(indent, f"if {exact}:")
    src.add(indent + 4, check)


def _generate(
    declarations: Mapping[str, Any], counter: TokenCounter
) -> tuple[Callable[[Any], Any], str]:
    """The policy's ``prepare`` function (see :class:`RequestShape`) and its source."""
    estimate = counter.name == ESTIMATE
    src = _Source()
    add = src.add
    add(0, "def prepare(request):")
    add(4, "if request.__class__ is not dict and not isinstance(request, _Mapping):")
    add(8, "_not_a_request(request)")
    add(4, "_scan_values(request)")
    add(4, "out = dict(request)")
    add(4, "get = out.get")
    add(4, "messages = get('messages')")
    add(4, "if messages is None:")
    add(8, "messages = []")
    add(4, "elif messages.__class__ is not list:")
    add(8, "messages = _as_list(messages)")
    add(4, "chars = tokens = i = 0")
    add(4, "for message in messages:")
    # the common message, {"role": "user", "content": "text"}, in a line; any other
    # through the general check (which names what is wrong) and character count
    add(8, "if message.__class__ is dict:")
    add(12, "content = message.get('content')")
    add(12, "if content.__class__ is str:")
    add(16, "role = message.get('role')")
    add(16, "if role is None or role.__class__ is str:")
    add(20, "n = len(content)")
    add(20, "chars += n")
    add(20, f"tokens += (n + 3) // 4 + {PER_MESSAGE}")
    add(20, "i += 1")
    add(20, "continue")
    add(8, "_check_message(message, i)")
    add(8, "n = _content_chars(message)")
    add(8, "chars += n")
    add(8, f"tokens += (n + 3) // 4 + {PER_MESSAGE}")
    add(8, "i += 1")
    add(4, "out['messages'] = messages")
    for name in ("max_tokens", "input_tokens"):
        add(4, f"_v0 = get({name!r})")
        add(4, f"if _v0 is not None and (_v0.__class__ is not int or _v0 > {MAX_REQUEST_TOKENS}):")
        add(8, f"_check_tokens(out, {name!r})")
    for name, decl in declarations.items():
        if name in _SKIPPED:
            continue
        add(4, f"_v0 = get({name!r})")
        add(4, "if _v0 is not None:")
        _emit(src, decl, "_v0", name, 8, 0)
    if not estimate:  # a tokenizer counts once every check has passed
        add(4, "chars, tokens = _count(messages)")
    add(4, "out['input_chars'] = chars")
    add(4, "provided = get('input_tokens')")
    add(4, "if (")
    add(8, "provided.__class__ is not int")
    add(8, "and (not isinstance(provided, int) or isinstance(provided, bool))")
    add(4, ") or provided < 0:")
    add(8, "out['input_tokens'] = tokens")
    add(4, "return out")
    namespace: dict[str, Any] = {
        "_Mapping": Mapping,
        "_not_a_request": _not_a_request,
        "_scan_values": scan_values,
        "_as_list": _as_list,
        "_check_message": _check_message,
        "_content_chars": content_chars,
        "_check_tokens": _check_tokens,
        "_count": counter.count,
        **src.names,
    }
    source = "\n".join(src.lines) + "\n"
    exec(compile(source, "<policyd request shape>", "exec"), namespace)
    prepare: Callable[[Any], Any] = namespace["prepare"]
    return prepare, source
