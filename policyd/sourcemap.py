"""Source maps: where each part of a loaded YAML document was written.

Owns :class:`Position` and :class:`SourceMap` (positions of keys and values looked up by path,
the raw text of scalars, and :meth:`SourceMap.scalar_offset`, which maps a character of a
string value back to the place it was written, through quotes, escapes and folded lines).
Also owns the node tree the map walks (:class:`Node`, :class:`ScalarNode`, :class:`SeqNode`,
:class:`MapNode`) and :class:`Lines` (character index <-> line/column); both are shared with
:mod:`policyd.yaml12`, which builds the nodes, and are not part of the public API.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Position", "SourceMap"]

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """A place in a file; line and column are 1-based, columns count characters."""

    line: int
    column: int


# --- nodes ---------------------------------------------------------------------------------


class Node:
    """A composed YAML node: ``start``/``end`` are character indexes into the file's text."""

    __slots__ = ("end", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end


class ScalarNode(Node):
    """A scalar with its resolved value and style (None plain, quote char, '|' or '>')."""

    __slots__ = ("merge", "style", "text_start", "value")

    def __init__(self, start: int, end: int, text_start: int, value: Any, style: str | None):
        self.start = start  # not super().__init__: one node per scalar, it adds up
        self.end = end
        self.text_start = text_start  # where the scalar itself starts, after any tag/anchor
        self.value = value
        self.style = style
        self.merge = False


class SeqNode(Node):
    """A sequence: its item nodes in order."""

    __slots__ = ("items",)

    def __init__(self, start: int) -> None:
        super().__init__(start, start)
        self.items: list[Node] = []


class MapNode(Node):
    """A mapping: string key -> (key node, value node), merge keys already applied."""

    __slots__ = ("entries",)

    def __init__(self, start: int) -> None:
        super().__init__(start, start)
        self.entries: dict[str, tuple[Node, Node]] = {}  # key -> (key node, value node)


_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_OTHER_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


class Lines:
    """Character index <-> line/column for one text, counting breaks the way YAML does."""

    def __init__(self, text: str) -> None:
        self.text = text
        if any(c in text for c in _OTHER_BREAKS):
            self.starts = [0, *(m.end() for m in _BREAK.finditer(text))]
        else:
            self.starts = _newline_starts(text)

    @classmethod
    def by_newline(cls, text: str) -> Lines:
        """Lines broken at ``"\n"`` alone (a prompt file's, as the prompts stage reads it)."""
        lines = cls.__new__(cls)
        lines.text, lines.starts = text, _newline_starts(text)
        return lines

    def position(self, index: int) -> Position:
        line = bisect.bisect_right(self.starts, index) - 1
        return Position(line + 1, index - self.starts[line] + 1)


def _newline_starts(text: str) -> list[int]:
    """Where each line starts, breaking at "\n" only: str.find, far cheaper than a regex."""
    starts = [0]
    find = text.find
    at = find("\n")
    while at >= 0:
        at += 1
        starts.append(at)
        at = find("\n", at)
    return starts


# --- the source map ------------------------------------------------------------------------


class SourceMap:
    """Positions of every node of one document, looked up by path (keys and list indexes)."""

    __slots__ = ("_lines", "_root")

    def __init__(self, root: Node, lines: Lines) -> None:
        self._root = root
        self._lines = lines

    def _walk(self, path: Path) -> tuple[Node, Node | None, bool]:
        """(deepest node reached, its key node if reached through a key, whole path found)."""
        node, key_node = self._root, None
        for part in path:
            if isinstance(node, MapNode) and isinstance(part, str) and part in node.entries:
                key_node, node = node.entries[part]
            elif (
                isinstance(node, SeqNode)
                and isinstance(part, int)
                and not isinstance(part, bool)
                and 0 <= part < len(node.items)
            ):
                key_node, node = None, node.items[part]
            else:
                return node, key_node, False
        return node, key_node, True

    def value(self, path: Path) -> Position:
        """Start of the value at ``path``, or of its nearest existing ancestor."""
        return self._lines.position(self._walk(path)[0].start)

    def key(self, path: Path) -> Position:
        """Start of the mapping key whose value is at ``path`` (else as :meth:`value`)."""
        node, key_node, found = self._walk(path)
        if found and key_node is not None:
            return self._lines.position(key_node.start)
        return self._lines.position(node.start)

    def raw(self, path: Path) -> str | None:
        """The scalar at ``path`` exactly as written (quotes included), else None."""
        node, _, found = self._walk(path)
        if not found or not isinstance(node, ScalarNode):
            return None
        return self._lines.text[node.text_start : node.end]

    def scalar_offset(self, path: Path, offset: int) -> Position:
        """Where character ``offset`` of the string at ``path`` was written.

        Exact for plain and single-line quoted scalars (escapes included); for multi-line and
        block scalars every character written verbatim maps exactly and folded line breaks map
        to the end of the line they join.  Falls back to :meth:`value` for non-strings.
        """
        return self.scalar_offsets(path, (offset,))[0]

    def scalar_offsets(self, path: Path, offsets: Sequence[int]) -> list[Position]:
        """:meth:`scalar_offset` of each of ``offsets`` into the same string, mapping the
        string once (once per offset made many reports in one long template quadratic)."""
        node, _, found = self._walk(path)
        if not found or not isinstance(node, ScalarNode) or not isinstance(node.value, str):
            return [self._lines.position(node.start) for _ in offsets]
        indexes = _scalar_indexes(self._lines.text[node.text_start : node.end], node)
        last = len(indexes) - 1
        return [
            self._lines.position(node.text_start + indexes[max(0, min(offset, last))])
            for offset in offsets
        ]


def _scalar_indexes(src: str, node: ScalarNode) -> list[int]:
    """Index into ``src`` (the scalar as written) of each character of its value (and of
    its end): where it was written, else (a folded break or an escape) just after the
    nearest character before it that was, else where the first one was."""
    mapping = _scalar_mapping(src, node)
    first = next((i for i in mapping if i >= 0), 0)
    out: list[int] = []
    before = -1  # the index of the nearest character so far written verbatim
    for index in mapping:
        if index >= 0:
            before = index
            out.append(index)
        else:
            out.append(before + 1 if before >= 0 else first)
    return out


def _scalar_mapping(src: str, node: ScalarNode) -> list[int]:
    """Index into ``src`` of each character of the scalar's value written verbatim (and of
    its end); -1 for one that was not (a folded break, an escape)."""
    value: str = node.value
    mapping: list[int] = [-1] * (len(value) + 1)
    cursor = 0
    for chars in _scalar_lines(src, node.style, value):
        if not chars:
            continue
        piece = "".join(c for c, _ in chars)
        found = value.find(piece, cursor)
        if found < 0:
            break
        for j, (_, index) in enumerate(chars):
            mapping[found + j] = index
        cursor = found + len(piece)
    return mapping


def _scalar_lines(src: str, style: str | None, value: str) -> list[list[tuple[str, int]]]:
    """The characters of each source line that appear verbatim in the value, with indexes."""
    lines, pos = [], 0
    for m in _BREAK.finditer(src):
        lines.append((src[pos : m.start()], pos))
        pos = m.end()
    lines.append((src[pos:], pos))
    if style in ("|", ">"):
        content = lines[1:]
        first = next((ln for ln, _ in content if ln.strip(" ")), "")
        lead = len(first) - len(first.lstrip(" "))
        body = value.lstrip("\n")
        indent = next((k for k in range(lead + 1) if body.startswith(first[k:])), lead)
        return [[(c, at + indent + j) for j, c in enumerate(ln[indent:])] for ln, at in content]
    quote = style if style in ("'", '"') else None
    if quote:
        lines[0] = (lines[0][0][1:], 1)
        last, at = lines[-1]
        lines[-1] = (last[:-1] if last.endswith(quote) else last, at)
    result = []
    for i, (line, at) in enumerate(lines):
        tokens = _tokens(line, at, quote)  # (char, index, escaped)
        joined = quote == '"' and line.endswith("\\") and _escaped_break(line)
        if i > 0:
            while tokens and tokens[0][0] in " \t" and not tokens[0][2]:
                tokens.pop(0)
        if i < len(lines) - 1 and not joined:
            while tokens and tokens[-1][0] in " \t" and not tokens[-1][2]:
                tokens.pop()
        result.append([(c, index) for c, index, _ in tokens])
    return result


_ESCAPES = dict(
    zip('0abt\tnvfre "/\\N_LP', '\0\a\b\t\t\n\v\f\r\x1b "/\\\x85\xa0\u2028\u2029', strict=True)
)
_HEX = {"x": 2, "u": 4, "U": 8}


def _escaped_break(line: str) -> bool:
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _tokens(line: str, at: int, quote: str | None) -> list[tuple[str, int, bool]]:
    out, j = [], 0
    while j < len(line):
        c = line[j]
        if quote == "'" and line.startswith("''", j):
            out.append(("'", at + j, False))
            j += 2
        elif quote == '"' and c == "\\" and j + 1 < len(line):
            e = line[j + 1]
            width = _HEX.get(e, 0)
            try:
                char = chr(int(line[j + 2 : j + 2 + width], 16)) if width else _ESCAPES[e]
            except (KeyError, ValueError, OverflowError):
                char = e
            out.append((char, at + j, True))
            j += 2 + width
        elif quote == '"' and c == "\\":
            j += 1  # escaped line break
        else:
            out.append((c, at + j, False))
            j += 1
    return out
