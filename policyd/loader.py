"""Loader: YAML files -> plain documents with a source map (safe YAML 1.2 reading).

Owns reading a bundle (a file, or a directory read recursively in sorted order) and turning
each YAML document into plain Python data plus a :class:`SourceMap` that locates every node,
so later stages can report ``file:line:column``.  Loading never raises for bad input: every
problem becomes a :class:`~policyd.diagnostics.Diagnostic` (codes PD001-PD011).

YAML semantics are the 1.2 core schema, built on PyYAML's pure-Python parser (events only;
composition, tag resolution and construction are done here):

- booleans are only ``true``/``false`` (any of 3 casings); ``yes``/``on``/``no`` stay strings;
  null is ``~``, ``null`` or empty; ints are decimal, ``0o`` or ``0x``; floats include ``.inf``
  and ``.nan``; no sexagesimal numbers, ``_`` separators or implicit timestamps.
- numbers are :class:`YamlInt` / :class:`YamlFloat`, which keep the text as written (``.raw``).
- only the standard tags ``!!str !!int !!float !!bool !!null !!map !!seq`` are accepted.
- merge keys (``<<: *defaults``, or a list of aliases) are supported: keys written in the
  mapping win, then earlier merge sources over later ones.  ``"<<"`` quoted is a plain key.
- aliases are expanded into copies (the data is always a tree), bounded by
  :data:`MAX_ALIAS_NODES` nodes per document and :data:`MAX_DEPTH` levels of nesting.
- a document whose loading found an error is left out of ``documents``; empty documents (a
  trailing ``---``) are skipped silently; ``Document.index`` counts every document in the file.
"""

from __future__ import annotations

import bisect
import codecs
import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import events as ev
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.scanner import Scanner

from policyd.diagnostics import Diagnostic, Severity, sort_diagnostics

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "Document",
    "LoadResult",
    "Position",
    "SourceMap",
    "YamlFloat",
    "YamlInt",
    "load_path",
    "load_text",
]

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_ALIAS_NODES = 100_000
MAX_DEPTH = 64
YAML_SUFFIXES = (".yaml", ".yml")
Path = tuple[str | int, ...]


class YamlInt(int):
    """An integer read from YAML; ``raw`` is the text as written (``0x1F``, ``007``)."""

    raw: str

    def __new__(cls, value: int, raw: str) -> YamlInt:
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj

    def __reduce__(self) -> tuple[type[YamlInt], tuple[int, str]]:
        return (YamlInt, (int(self), self.raw))


class YamlFloat(float):
    """A float read from YAML; ``raw`` is the text as written (``1.10`` stays ``"1.10"``)."""

    raw: str

    def __new__(cls, value: float, raw: str) -> YamlFloat:
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj

    def __reduce__(self) -> tuple[type[YamlFloat], tuple[float, str]]:
        return (YamlFloat, (float(self), self.raw))


@dataclass(frozen=True)
class Position:
    """A place in a file; line and column are 1-based, columns count characters."""

    line: int
    column: int


# --- nodes ---------------------------------------------------------------------------------


class _Node:
    __slots__ = ("end", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end


class _Scalar(_Node):
    __slots__ = ("merge", "style", "text_start", "value")

    def __init__(self, start: int, end: int, text_start: int, value: Any, style: str | None):
        super().__init__(start, end)
        self.text_start = text_start  # where the scalar itself starts, after any tag/anchor
        self.value = value
        self.style = style
        self.merge = False


class _Seq(_Node):
    __slots__ = ("items",)

    def __init__(self, start: int) -> None:
        super().__init__(start, start)
        self.items: list[_Node] = []


class _Map(_Node):
    __slots__ = ("entries",)

    def __init__(self, start: int) -> None:
        super().__init__(start, start)
        self.entries: dict[str, tuple[_Node, _Node]] = {}  # key -> (key node, value node)


_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")


class _Lines:
    """Character index <-> line/column for one text, counting breaks the way YAML does."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(m.end() for m in _BREAK.finditer(text))]

    def position(self, index: int) -> Position:
        line = bisect.bisect_right(self.starts, index) - 1
        return Position(line + 1, index - self.starts[line] + 1)


# --- the source map ------------------------------------------------------------------------


class SourceMap:
    """Positions of every node of one document, looked up by path (keys and list indexes)."""

    __slots__ = ("_lines", "_root")

    def __init__(self, root: _Node, lines: _Lines) -> None:
        self._root = root
        self._lines = lines

    def _walk(self, path: Path) -> tuple[_Node, _Node | None, bool]:
        """(deepest node reached, its key node if reached through a key, whole path found)."""
        node, key_node = self._root, None
        for part in path:
            if isinstance(node, _Map) and isinstance(part, str) and part in node.entries:
                key_node, node = node.entries[part]
            elif (
                isinstance(node, _Seq)
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
        if not found or not isinstance(node, _Scalar):
            return None
        return self._lines.text[node.text_start : node.end]

    def scalar_offset(self, path: Path, offset: int) -> Position:
        """Where character ``offset`` of the string at ``path`` was written.

        Exact for plain and single-line quoted scalars (escapes included); for multi-line and
        block scalars every character written verbatim maps exactly and folded line breaks map
        to the end of the line they join.  Falls back to :meth:`value` for non-strings.
        """
        node, _, found = self._walk(path)
        if not found or not isinstance(node, _Scalar) or not isinstance(node.value, str):
            return self._lines.position(node.start)
        index = _scalar_index(self._lines.text[node.text_start : node.end], node, offset)
        return self._lines.position(node.text_start + index)


def _scalar_index(src: str, node: _Scalar, offset: int) -> int:
    """Index into ``src`` (the scalar as written) of character ``offset`` of its value."""
    value: str = node.value
    offset = max(0, min(offset, len(value)))
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
    if mapping[offset] >= 0:
        return mapping[offset]
    for before in range(offset - 1, -1, -1):  # a folded break or escape: end of previous text
        if mapping[before] >= 0:
            return mapping[before] + 1
    return next((i for i in mapping if i >= 0), 0)


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


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """One YAML document: plain data plus where each part of it was written."""

    file: str
    index: int
    data: Any
    source_map: SourceMap = field(repr=False, compare=False)


@dataclass(frozen=True)
class LoadResult:
    documents: list[Document]
    files: dict[str, str]
    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


# --- YAML 1.2 core schema ------------------------------------------------------------------

_STD = "tag:yaml.org,2002:"
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")
_NO_VALUE = object()


def _number(text: str) -> Any:
    if _INT.fullmatch(text):
        if text.startswith(("0o", "0x")):
            return YamlInt(int(text[2:], 8 if text[1] == "o" else 16), text)
        return YamlInt(int(text, 10), text)
    if _FLOAT.fullmatch(text):
        return YamlFloat(float(text), text)
    if _INF.fullmatch(text):
        return YamlFloat(-math.inf if text.startswith("-") else math.inf, text)
    if _NAN.fullmatch(text):
        return YamlFloat(math.nan, text)
    return _NO_VALUE


def _resolve_plain(text: str) -> Any:
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    number = _number(text)
    return text if number is _NO_VALUE else number


def _resolve_tagged(tag: str, text: str) -> Any:
    """Value of an explicitly tagged scalar, or _NO_VALUE if the text does not fit the tag."""
    kind = tag.removeprefix(_STD)
    if kind == "str":
        return text
    if kind == "null":
        return None if text in _NULLS else _NO_VALUE
    if kind == "bool":
        return _BOOLS.get(text, _NO_VALUE)
    number = _number(text)
    if kind == "float" and isinstance(number, YamlInt):
        return YamlFloat(float(number), text)
    if kind in ("int", "float") and isinstance(number, YamlInt if kind == "int" else YamlFloat):
        return number
    return _NO_VALUE


_ALLOWED_TAGS = "!!str, !!int, !!float, !!bool, !!null, !!map, !!seq"


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_STD) :] if tag.startswith(_STD) else tag


# --- composing events into nodes and data --------------------------------------------------


class _Events(Reader, Scanner, Parser):
    """PyYAML's reader, scanner and parser; remembers where each scalar token starts."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        self.scalar_starts: dict[int, int] = {}

    def get_token(self) -> Any:
        token = Scanner.get_token(self)
        if isinstance(token, yaml.ScalarToken):
            self.scalar_starts[token.end_mark.index] = token.start_mark.index
        return token


class _Limit(Exception):
    pass


@dataclass
class _Frame:
    node: _Seq | _Map
    anchor: str | None
    flow: bool
    key: _Node | None = None
    explicit: dict[str, _Node] = field(default_factory=dict)  # key -> key node
    order: list[tuple[str, Any]] = field(default_factory=list)  # ("key", k) | ("merge", nodes)


class _FileLoader:
    """Composes the documents of one decoded file, collecting diagnostics."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = _Lines(text)
        self.diagnostics: list[Diagnostic] = []
        self.documents: list[Document] = []
        self.nonempty = 0
        self.anchors: dict[str, _Node] = {}  # per document, like everything below
        self.building: set[str] = set()
        self.aliases: list[int] = []
        self.composed = self.count = self.budget = 0
        self.failed = False
        self.stack: list[_Frame] = []

    def error(self, index: int, code: str, message: str, hint: str) -> None:
        self.diagnostics.append(_diag(self.file, self.lines.position(index), code, message, hint))

    def run(self) -> None:
        try:
            source = _Events(self.lines.text)
        except ReaderError as exc:
            char = exc.character if isinstance(exc.character, int) else 0
            hint = 'remove it; in a double-quoted string it can be written as an escape ("\\x..")'
            self.error(exc.position, "PD001", f"control character U+{char:04X} in YAML", hint)
            return
        try:
            self._stream(source)
        except yaml.MarkedYAMLError as exc:
            self._syntax_error(exc)
        finally:
            source.dispose()

    def _stream(self, source: _Events) -> None:
        index = -1
        while not isinstance(event := source.get_event(), ev.StreamEndEvent):
            if isinstance(event, ev.DocumentStartEvent):
                index += 1
                self._document(source, index)

    def _document(self, source: _Events, index: int) -> None:
        self.anchors, self.building, self.aliases = {}, set(), []
        self.composed, self.failed = 0, False
        stack: list[_Frame] = []
        self.stack = stack  # for syntax errors: which brackets are still open
        root: _Node | None = None
        while True:
            event = source.get_event()
            if isinstance(event, ev.DocumentEndEvent):
                break
            start, end = _index(event.start_mark), _index(event.end_mark)
            if isinstance(event, ev.ScalarEvent):
                node = self._scalar(event, source.scalar_starts.get(end, start))
            elif isinstance(event, ev.AliasEvent):
                node = self._alias(event.anchor or "", start)
            elif isinstance(event, ev.SequenceStartEvent | ev.MappingStartEvent):
                is_map = isinstance(event, ev.MappingStartEvent)
                self._check_collection_tag(event.tag, "map" if is_map else "seq", start)
                if len(stack) + 1 > MAX_DEPTH and not self.failed:
                    hint = "flatten the structure; policies never need this depth"
                    self.error(start, "PD006", f"nesting deeper than {MAX_DEPTH} levels", hint)
                    self.failed = True
                node = _Map(start) if is_map else _Seq(start)
                stack.append(_Frame(node, event.anchor, bool(event.flow_style)))
                self.composed += 1
                if event.anchor:
                    self.building.add(event.anchor)
                continue
            else:  # collection end
                frame = stack.pop()
                node = frame.node
                node.end = end
                if isinstance(node, _Map):
                    self._finish_map(frame)
                if frame.anchor:
                    self.building.discard(frame.anchor)
                    self.anchors[frame.anchor] = node
            if stack:
                self._add(stack[-1], node)
            else:
                root = node
        if root is not None:
            self._finish_document(root, index)

    def _scalar(self, event: ev.ScalarEvent, text_start: int) -> _Node:
        start, tag, text = _index(event.start_mark), event.tag, event.value
        if tag is None and event.implicit[0]:
            value = _resolve_plain(text)
        elif tag is None or tag == "!" or tag == _STD + "str":
            value = text
        elif tag in {_STD + t for t in ("int", "float", "bool", "null")}:
            value = _resolve_tagged(tag, text)
            if value is _NO_VALUE:
                message = f"{text!r} is not a valid {_short_tag(tag)}"
                self.error(start, "PD007", message, "fix the value or remove the tag")
        else:
            self._bad_tag(tag, start)
            value = _NO_VALUE
        if isinstance(value, YamlInt) and len(text) > 4000:
            self.error(start, "PD006", "number has more than 4000 digits", "shorten it")
            value = _NO_VALUE
        if value is _NO_VALUE:
            self.failed = True
        node = _Scalar(start, _index(event.end_mark), text_start, value, event.style)
        node.merge = text == "<<" and tag is None and bool(event.implicit[0])
        self.composed += 1
        if event.anchor:
            self.anchors[event.anchor] = node
        return node

    def _bad_tag(self, tag: str, start: int) -> None:
        hint = "policy files hold plain data; remove the tag (allowed: " + _ALLOWED_TAGS + ")"
        self.error(start, "PD007", f"unsupported tag {_short_tag(tag)}", hint)

    def _check_collection_tag(self, tag: str | None, kind: str, start: int) -> None:
        if tag is not None and tag != "!" and tag != _STD + kind:
            self._bad_tag(tag, start)
            self.failed = True

    def _alias(self, name: str, start: int) -> _Node:
        self.aliases.append(start)
        if name in self.anchors:
            return self.anchors[name]
        if name in self.building:
            message = f"alias *{name} is used inside its own anchor"
            hint = "a node cannot contain itself; copy the part you need instead"
        else:
            message = f"alias *{name} has no anchor &{name} before it"
            hint = f"define &{name} earlier in the same document (anchors do not cross '---')"
        self.error(start, "PD001", message, hint)
        self.failed = True
        return _Scalar(start, start, start, _NO_VALUE, None)  # placeholder keeps keys paired

    def _add(self, frame: _Frame, node: _Node) -> None:
        if isinstance(frame.node, _Seq):
            frame.node.items.append(node)
            return
        key = frame.key
        if key is None:
            frame.key = node
            return
        frame.key = None
        if isinstance(key, _Scalar) and key.merge:
            sources = node.items if isinstance(node, _Seq) else [node]
            if all(isinstance(s, _Map) for s in sources):
                frame.order.append(("merge", sources))
            else:
                message = "merge key '<<' needs a mapping or a list of mappings"
                hint = "write '<<: *name' or '<<: [*a, *b]' with anchored mappings"
                self.error(node.start, "PD009", message, hint)
                self.failed = True
            return
        name = self._key_name(key)
        if name is None:
            self.failed = True
        elif name in frame.explicit:
            first = self.lines.position(frame.explicit[name].start)
            hint = (
                f"{name!r} is already set at line {first.line}, column {first.column}; "
                "YAML keeps only one of them, so remove or rename one"
            )
            self.error(key.start, "PD002", f"duplicate key {name!r}", hint)
            self.failed = True
        else:
            frame.explicit[name] = key
            frame.order.append(("key", name))
            frame.node.entries[name] = (key, node)

    def _key_name(self, key: _Node) -> str | None:
        if isinstance(key, _Scalar) and isinstance(key.value, str):
            return key.value
        if isinstance(key, _Scalar) and key.value is _NO_VALUE:
            return None  # already reported
        if isinstance(key, _Scalar):
            v = key.value
            kind = "null" if v is None else type(v).__name__.removeprefix("Yaml").lower()
            written = self.lines.text[key.text_start : key.end]
            hint = f'quote it to make it a string: "{written}"' if written else "write a name"
            message = f"mapping key must be a string, not {kind}"
        else:
            message = "mapping key must be a string, not a mapping or list"
            hint = "use a plain string key"
        self.error(key.start, "PD009", message, hint)
        return None

    def _finish_map(self, frame: _Frame) -> None:
        node = frame.node
        assert isinstance(node, _Map)
        if frame.key is not None:  # cannot happen with well-formed events
            self.failed = True
        explicit = node.entries
        entries: dict[str, tuple[_Node, _Node]] = {}
        for kind, item in frame.order:
            if kind == "key":
                entries[item] = explicit[item]
                continue
            for source in item:
                for k, pair in source.entries.items():
                    if k not in explicit and k not in entries:
                        entries[k] = pair
        node.entries = entries

    def _finish_document(self, root: _Node, index: int) -> None:
        if isinstance(root, _Scalar) and root.value is None and root.start == root.end:
            return  # an empty document, e.g. after a trailing '---'
        self.nonempty += 1
        if self.failed:
            return
        if not isinstance(root, _Map):
            kind = "a scalar" if isinstance(root, _Scalar) else "a list"
            hint = "each document is a mapping with 'apiVersion: policyd/v1', 'kind: ...', ..."
            self.error(root.start, "PD008", f"document is {kind}, not a mapping", hint)
            return
        self.count, self.budget = 0, self.composed + MAX_ALIAS_NODES
        try:
            data = self._construct(root, 1)
        except _Limit as exc:
            where = self.aliases[0] if self.aliases else root.start
            hint = "aliases are bounded to keep loading safe; write fewer, smaller repeats"
            self.error(where, "PD006", str(exc), hint)
            return
        self.documents.append(Document(self.file, index, data, SourceMap(root, self.lines)))

    def _construct(self, node: _Node, depth: int) -> Any:
        self.count += 1
        if self.count > self.budget:
            raise _Limit(f"aliases expand this document by more than {MAX_ALIAS_NODES:,} nodes")
        if isinstance(node, _Scalar):
            return node.value
        if depth > MAX_DEPTH:
            raise _Limit(f"aliases nest this document deeper than {MAX_DEPTH} levels")
        if isinstance(node, _Seq):
            return [self._construct(item, depth + 1) for item in node.items]
        assert isinstance(node, _Map)
        return {k: self._construct(v, depth + 1) for k, (_, v) in node.entries.items()}

    def _syntax_error(self, exc: yaml.MarkedYAMLError) -> None:
        problem = exc.problem or "invalid YAML"
        mark = exc.problem_mark or exc.context_mark
        if "end of stream" in problem and exc.context_mark is not None:
            mark = exc.context_mark  # point at the unclosed quote or bracket, not at the end
        index = _index(mark)
        text = self.lines.text
        unclosed = [f.node for f in self.stack if f.flow]
        if unclosed and index >= len(text.rstrip()):
            pair = "[]" if isinstance(unclosed[-1], _Seq) else "{}"
            message = f"YAML syntax error: '{pair[0]}' is never closed"
            self.error(unclosed[-1].start, "PD001", message, f"close it with '{pair[1]}'")
            return
        line_start = self.lines.starts[self.lines.position(index).line - 1]
        indent = re.match(r"[ \t]*", text[line_start:])
        if indent and "\t" in indent.group():
            hint = "YAML forbids tabs for indentation; replace the tab with spaces"
            at = line_start + indent.group().index("\t")
            self.error(at, "PD003", "tab character used for indentation", hint)
            return
        if text[index : index + 1] == "\t":
            hint = "replace the tab with a space"
            self.error(index, "PD003", "tab character where YAML expects a space", hint)
            return
        context = ""
        if exc.context and exc.context_mark is not None:
            ctx = self.lines.position(exc.context_mark.index)
            context = f" ({exc.context} at line {ctx.line}, column {ctx.column})"
        self.error(index, "PD001", f"YAML syntax error: {problem}{context}", _syntax_hint(problem))


_SYNTAX_HINTS = {
    "mapping values are not allowed": "quote the value if it contains ': ', or fix the indentation",
    "could not find expected ':'": "end the key with ':' and indent the line like its siblings",
    "expected <block end>": "fix the indentation: entries of one mapping or list line up",
    "did not find expected": "fix the indentation: every '-' item or 'key:' lines up",
    "end of stream": "a quote or bracket is not closed; look for the one that started it",
    "cannot start any token": "quote the value: '@' and '`' cannot start a plain scalar",
    "escape": "in double quotes write a backslash as \\\\, or use single quotes",
}


def _syntax_hint(problem: str) -> str:
    return next((h for k, h in _SYNTAX_HINTS.items() if k in problem), "fix the YAML syntax here")


def _index(mark: Any) -> int:
    return mark.index if mark is not None else 0


# --- files and directories -----------------------------------------------------------------

_START = Position(1, 1)


def _diag(file: str, pos: Position, code: str, message: str, hint: str) -> Diagnostic:
    return Diagnostic(file, pos.line, pos.column, Severity.ERROR, code, message, hint)


def _display(path: str) -> str:
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute, os.getcwd())
    except ValueError:  # another drive on Windows
        return absolute
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return absolute
    return relative


def _decode(data: bytes, file: str, diagnostics: list[Diagnostic]) -> str | None:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")
        pos = _Lines(before).position(len(before))
        utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        hint = "the file is UTF-16; " if utf16 else ""
        message = f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x} here)"
        diagnostics.append(_diag(file, pos, "PD004", message, hint + "save the file as UTF-8"))
        return None


def _load(
    text: str | bytes, file: str, files: dict[str, str]
) -> tuple[list[Document], list[Diagnostic]]:
    diagnostics: list[Diagnostic] = []
    if len(text) > MAX_FILE_BYTES:
        message = f"file is larger than the {MAX_FILE_BYTES // (1024 * 1024)} MB limit"
        hint = "split the bundle into smaller files"
        return [], [_diag(file, _START, "PD006", message, hint)]
    if isinstance(text, bytes):
        decoded = _decode(text, file, diagnostics)
        if decoded is None:
            files[file] = text.decode("utf-8", "replace")
            return [], diagnostics
        text = decoded
    text = text.removeprefix("\ufeff")
    files[file] = text
    loader = _FileLoader(file, text)
    loader.run()
    if not loader.nonempty and not loader.diagnostics:
        what = "is empty" if not text.strip() else "has no YAML document"
        hint = "a policy file needs a document; restore it if a sync truncated it, or delete it"
        loader.error(0, "PD005", f"file {what}", hint)
    return loader.documents, loader.diagnostics


def load_text(text: str | bytes, file: str = "<string>") -> LoadResult:
    """Load YAML text (bytes must be UTF-8) as if it were the file ``file``."""
    files: dict[str, str] = {}
    documents, diagnostics = _load(text, file, files)
    return LoadResult(documents, files, sort_diagnostics(diagnostics))


def _walk(directory: str, seen_dirs: set[str], diagnostics: list[Diagnostic]) -> Iterator[str]:
    real = os.path.realpath(directory)
    if real in seen_dirs:
        return
    seen_dirs.add(real)
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        diagnostics.append(_unreadable(directory, exc))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue  # hidden; a ConfigMap's ..data is reached through its visible symlinks
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(entry.path, seen_dirs, diagnostics)
        elif entry.name.lower().endswith(YAML_SUFFIXES):
            yield entry.path


def _unreadable(path: str, exc: OSError) -> Diagnostic:
    hint = "check that the path exists and is readable by this user"
    return _diag(_display(path), _START, "PD011", f"cannot read: {exc.strerror or exc}", hint)


def _read(path: str) -> bytes:
    """The file's bytes; at most one byte over the limit, so an oversized file is reported."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(0, "not a regular file")
    with open(path, "rb") as handle:
        return handle.read(MAX_FILE_BYTES + 1)


def load_path(path: str | os.PathLike[str]) -> LoadResult:
    """Load a YAML file, or every ``*.yaml``/``*.yml`` under a directory in sorted order."""
    root = os.fspath(path)
    diagnostics: list[Diagnostic] = []
    documents: list[Document] = []
    files: dict[str, str] = {}
    if not os.path.lexists(root):
        message = f"no such file or directory: {root}"
        hint = "check the path (it is relative to the current directory)"
        diagnostics.append(_diag(_display(root), _START, "PD011", message, hint))
        return LoadResult([], {}, diagnostics)
    if os.path.isdir(root):
        paths = list(_walk(root, set(), diagnostics))
        if not paths and not diagnostics:
            hint = "policy files end in .yaml or .yml; names starting with '.' are skipped"
            message = "directory has no YAML files"
            diagnostics.append(_diag(_display(root), _START, "PD010", message, hint))
    else:
        paths = [root]
    seen: set[str] = set()
    for file in paths:
        real = os.path.realpath(file)
        if real in seen:
            continue
        seen.add(real)
        try:
            data = _read(file)
        except OSError as exc:
            diagnostics.append(_unreadable(file, exc))
            continue
        docs, diags = _load(data, _display(file), files)
        documents.extend(docs)
        diagnostics.extend(diags)
    return LoadResult(documents, files, sort_diagnostics(diagnostics))
