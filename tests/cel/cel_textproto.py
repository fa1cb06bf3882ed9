"""A small reader for protobuf text format, enough for the CEL conformance data files.

Messages become ``dict[str, list[value]]`` (every field may repeat); strings stay
``bytes`` until the caller knows whether the field holds text or bytes.
"""

from __future__ import annotations

import re
from typing import Any

Message = dict[str, list[Any]]

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<ext>\[[A-Za-z0-9_./]+\])
  | (?P<num>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?[fF]?|-?inf\b|-?nan\b)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}<>:,;\[\]])
    """,
    re.VERBOSE,
)

_SIMPLE_ESCAPES = {
    "n": 10,
    "t": 9,
    "r": 13,
    "a": 7,
    "b": 8,
    "f": 12,
    "v": 11,
    "\\": 92,
    "'": 39,
    '"': 34,
    "?": 63,
}


def _unescape(body: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
        elif nxt in "xX":
            m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2 :])
            assert m, body
            out.append(int(m.group(), 16))
            i += 2 + len(m.group())
        elif nxt in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i + 1 :])
            assert m
            out.append(int(m.group(), 8))
            i += 1 + len(m.group())
        elif nxt in "uU":
            n = 4 if nxt == "u" else 8
            out += chr(int(body[i + 2 : i + 2 + n], 16)).encode("utf-8")
            i += 2 + n
        else:
            raise ValueError(f"bad escape \\{nxt}")
    return bytes(out)


def _tokens(text: str) -> list[tuple[str, str]]:
    pos = 0
    out = []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"cannot tokenize at {text[pos : pos + 30]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group()))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def message(self, close: str | None) -> Message:
        msg: Message = {}
        while True:
            tok = self.peek()
            if tok is None:
                assert close is None
                return msg
            if tok[1] == close:
                self.take()
                return msg
            if tok[1] in ",;":
                self.take()
                continue
            _, name = self.take()
            if name.startswith("["):
                name = name[1:-1]
            if self.peek() == ("punct", ":"):
                self.take()
            msg.setdefault(name, []).extend(self.value())

    def value(self) -> list[Any]:
        kind, text = self.take()
        if text in ("{", "<"):
            return [self.message("}" if text == "{" else ">")]
        if text == "[":
            items: list[Any] = []
            while self.peek() != ("punct", "]"):
                if self.peek() == ("punct", ","):
                    self.take()
                    continue
                items.extend(self.value())
            self.take()
            return items
        if kind == "str":
            data = _unescape(text[1:-1])
            while self.peek() is not None and self.peek()[0] == "str":  # type: ignore[index]
                data += _unescape(self.take()[1][1:-1])
            return [data]
        if kind == "num":
            if re.fullmatch(r"[-+]?\d+", text):
                return [int(text)]
            if text[-1] in "fF" and not text.endswith("inf"):
                text = text[:-1]
            return [float(text)]
        return [text]  # identifiers: enum values, true/false


def parse_textproto(text: str) -> Message:
    """Parse one text-format message (a whole file)."""
    return _Parser(text).message(None)
