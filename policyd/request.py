"""Requests: check an app's request against the policy's declared context, count tokens.

A request is a plain mapping in the OpenAI chat shape plus the attributes the
policy declares under ``context``. :class:`RequestShape` is compiled once per
policy; per request it checks only the fields that are present (a missing
attribute is not an error: a condition reading it simply does not match) and
adds ``input_tokens`` and ``input_chars``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from policyd.errors import ConfigError, RequestError
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
                    value_check(element, f"{where}.{key}")

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
        out = dict(request)
        messages = out.get("messages")
        if messages is None:
            messages = []
        elif messages.__class__ is not list:
            if not isinstance(messages, list | tuple):
                raise RequestError(f"must be a list of messages, not {_kind(messages)}", "messages")
            messages = list(messages)
        for i, message in enumerate(messages):
            if message.__class__ is not dict and not isinstance(message, Mapping):
                raise RequestError("must be a mapping with role and content", f"messages[{i}]")
            content = message.get("content")
            if content is not None and not isinstance(content, str | list):
                raise RequestError(
                    f"must be a string or a list of parts, not {_kind(content)}",
                    f"messages[{i}].content",
                )
        out["messages"] = messages
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
