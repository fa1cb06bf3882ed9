"""Requests: check an app's request against the policy's declared context, count tokens.

A request is a plain mapping in the OpenAI chat shape plus the attributes the
policy declares under ``context``. :class:`RequestShape` is compiled once per
policy; per request it checks only the fields that are present (a missing
attribute is not an error: a condition reading it simply does not match) and
adds ``input_tokens`` and ``input_chars``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from policyd.errors import ConfigError, RequestError
from policyd.fields import MAX_TOKENS
from policyd.words import describe

Checker = Callable[[Any, str], None]

# Token estimate when no tokenizer is configured: about four characters per token
# for English text, plus a small per-message overhead (role, separators), as the
# OpenAI chat format adds. Deterministic and offline; the decision names it.
ESTIMATE = "estimate:chars/4"
_PER_MESSAGE = 4


def count_text(messages: list[Any]) -> tuple[int, int]:
    """(characters, estimated tokens) of chat messages' text content."""
    chars = 0
    tokens = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            n = len(content)
        elif isinstance(content, list):
            n = sum(
                len(part["text"])
                for part in content
                if isinstance(part, Mapping) and isinstance(part.get("text"), str)
            )
        else:
            n = 0
        chars += n
        tokens += (n + 3) // 4 + _PER_MESSAGE
    return chars, tokens


class TokenCounter:
    """Counts input tokens: a deterministic estimate, or tiktoken when configured."""

    def __init__(self, kind: str = "estimate") -> None:
        self.name = ESTIMATE
        self._encode: Callable[[str], list[int]] | None = None
        if kind == "tiktoken":
            self._encode = _tiktoken_encoder()
            self.name = "tiktoken:cl100k_base"
        elif kind != "estimate":
            raise ConfigError(f"unknown token counter {kind!r}: use 'estimate' or 'tiktoken'")

    def count(self, messages: list[Any]) -> tuple[int, int]:
        chars, estimate = count_text(messages)
        if self._encode is None:
            return chars, estimate
        tokens = 0
        for message in messages:
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(
                    p["text"] for p in content if isinstance(p, Mapping) and "text" in p
                )
            tokens += len(self._encode(content if isinstance(content, str) else ""))
            tokens += _PER_MESSAGE
        return chars, tokens


def _tiktoken_encoder() -> Callable[[str], list[int]]:
    """cl100k_base from the copy LiteLLM ships, so nothing is downloaded at run time."""
    import importlib.util
    import os
    from pathlib import Path

    spec = importlib.util.find_spec("litellm")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            cache = Path(location) / "litellm_core_utils" / "tokenizers"
            if cache.is_dir():
                os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache))
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base")
    return encoding.encode_ordinary


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
        inner = text[4:-1]
        depth = 0
        split = len(inner)
        for i, ch in enumerate(inner):
            depth += ch == "<"
            depth -= ch == ">"
            if ch == "," and depth == 0:
                split = i
                break
        value_check = _type_checker(inner[split + 1 :]) if split < len(inner) else None

        def check_map(value: Any, where: str) -> None:
            if not isinstance(value, Mapping):
                raise RequestError(f"must be a mapping, not {_kind(value)}", where)
            if value_check is not None:
                for key, element in value.items():
                    value_check(element, f"{where}{key_step(value, key)}")

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
    if isinstance(key, str) and _name_like(key):
        return f".{key}"
    position = next((i for i, k in enumerate(mapping) if k is key or k == key), 0)
    return f"[key #{position}]"


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
            if (cls is str and item.isascii()) or cls in _PLAIN:
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
        if (cls is str and item.isascii()) or cls in _PLAIN:
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


class RequestShape:
    """The declared request attributes of one policy, compiled to checkers."""

    def __init__(self, declarations: Mapping[str, Any], counter: TokenCounter) -> None:
        self._checks = tuple(
            (name, _type_checker(decl))
            for name, decl in declarations.items()
            if name not in ("messages", "input_tokens", "input_chars")
        )
        self._counter = counter

    def prepare(self, request: Any) -> dict[str, Any]:
        """A checked copy of the request with ``input_tokens`` and ``input_chars`` set."""
        if request.__class__ is not dict and not isinstance(request, Mapping):
            raise RequestError(
                f"a request must be a mapping (dict), not {_kind(request)}",
                hint="pass e.g. {'messages': [...], 'user': {'id': 'u1'}}",
            )
        scan_values(request)
        out = dict(request)
        messages = out.get("messages")
        if messages is None:
            messages = []
        elif messages.__class__ is not list:
            if not isinstance(messages, list | tuple):
                raise RequestError(f"must be a list of messages, not {_kind(messages)}", "messages")
            messages = list(messages)
        for i, message in enumerate(messages):
            _check_message(message, i)
        out["messages"] = messages
        _check_tokens(out, "max_tokens")
        _check_tokens(out, "input_tokens")
        for name, check in self._checks:
            value = out.get(name)
            if value is not None:
                check(value, name)
        chars, tokens = self._counter.count(messages)
        out["input_chars"] = chars
        provided = out.get("input_tokens")
        if (
            provided.__class__ is not int
            and (not isinstance(provided, int) or isinstance(provided, bool))
        ) or provided < 0:
            out["input_tokens"] = tokens
        return out
