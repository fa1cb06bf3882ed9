"""YAML 1.2 core-schema reading: one decoded file's text -> plain data, nodes and diagnostics.

Owns composing PyYAML's parser events (PyYAML's pure-Python reader, scanner and parser are used
for events only; composition, tag resolution and construction are done here), the numbers
:class:`YamlInt` / :class:`YamlFloat`, and the YAML-level diagnostics PD001-PD003 and
PD006-PD009.  Files, decoding and :class:`~policyd.loader.Document` live in
:mod:`policyd.loader`.

- booleans are only ``true``/``false`` (any of 3 casings); ``yes``/``on``/``no`` stay strings;
  null is ``~``, ``null`` or empty; ints are decimal, ``0o`` or ``0x``; floats include ``.inf``
  and ``.nan``; no sexagesimal numbers, ``_`` separators or implicit timestamps.
- numbers are :class:`YamlInt` / :class:`YamlFloat`, which keep the text as written (``.raw``).
- only the standard tags ``!!str !!int !!float !!bool !!null !!map !!seq`` are accepted.
- merge keys (``<<: *defaults``, or a list of aliases) are supported: keys written in the
  mapping win, then earlier merge sources over later ones.  ``"<<"`` quoted is a plain key.
- aliases are expanded into copies (the data is always a tree), bounded by
  :data:`MAX_ALIAS_NODES` nodes per document and :data:`MAX_DEPTH` levels of nesting.
- a document whose reading found an error is left out of ``documents``; empty documents (a
  trailing ``---``) are skipped silently; a document's index counts every document in the file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import events as ev
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.scanner import Scanner

from policyd.diagnostics import Diagnostic, Severity
from policyd.sourcemap import Lines, MapNode, Node, ScalarNode, SeqNode, SourceMap

__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "FileReader", "YamlFloat", "YamlInt"]

MAX_ALIAS_NODES = 100_000
MAX_DEPTH = 64


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
        if len(text) > 4000:  # refused as PD006 by the composer; int() of it would raise
            return YamlInt(0, text)
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
    node: SeqNode | MapNode
    anchor: str | None
    flow: bool
    key: Node | None = None
    explicit: dict[str, Node] = field(default_factory=dict)  # key -> key node
    order: list[tuple[str, Any]] = field(default_factory=list)  # ("key", k) | ("merge", nodes)


class FileReader:
    """Composes the documents of one decoded file, collecting diagnostics.

    After :meth:`run`, ``documents`` holds ``(index, data, source map)`` for each document read
    without error, ``diagnostics`` the problems found, and ``nonempty`` how many documents were
    not empty (whether or not they were read cleanly).
    """

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = Lines(text)
        self.diagnostics: list[Diagnostic] = []
        self.documents: list[tuple[int, Any, SourceMap]] = []
        self.nonempty = 0
        self.anchors: dict[str, Node] = {}  # per document, like everything below
        self.building: set[str] = set()
        self.aliases: list[int] = []
        self.composed = self.count = self.budget = 0
        self.failed = False
        self.stack: list[_Frame] = []

    def error(self, index: int, code: str, message: str, hint: str) -> None:
        pos = self.lines.position(index)
        diagnostic = Diagnostic(
            self.file, pos.line, pos.column, Severity.ERROR, code, message, hint
        )
        self.diagnostics.append(diagnostic)

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
        root: Node | None = None
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
                node = MapNode(start) if is_map else SeqNode(start)
                stack.append(_Frame(node, event.anchor, bool(event.flow_style)))
                self.composed += 1
                if event.anchor:
                    self.building.add(event.anchor)
                continue
            else:  # collection end
                frame = stack.pop()
                node = frame.node
                node.end = end
                if isinstance(node, MapNode):
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

    def _scalar(self, event: ev.ScalarEvent, text_start: int) -> Node:
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
        node = ScalarNode(start, _index(event.end_mark), text_start, value, event.style)
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

    def _alias(self, name: str, start: int) -> Node:
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
        return ScalarNode(start, start, start, _NO_VALUE, None)  # placeholder keeps keys paired

    def _add(self, frame: _Frame, node: Node) -> None:
        if isinstance(frame.node, SeqNode):
            frame.node.items.append(node)
            return
        key = frame.key
        if key is None:
            frame.key = node
            return
        frame.key = None
        if isinstance(key, ScalarNode) and key.merge:
            sources = node.items if isinstance(node, SeqNode) else [node]
            if all(isinstance(s, MapNode) for s in sources):
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

    def _key_name(self, key: Node) -> str | None:
        if isinstance(key, ScalarNode) and isinstance(key.value, str):
            return key.value
        if isinstance(key, ScalarNode) and key.value is _NO_VALUE:
            return None  # already reported
        if isinstance(key, ScalarNode):
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
        assert isinstance(node, MapNode)
        if frame.key is not None:  # cannot happen with well-formed events
            self.failed = True
        explicit = node.entries
        entries: dict[str, tuple[Node, Node]] = {}
        for kind, item in frame.order:
            if kind == "key":
                entries[item] = explicit[item]
                continue
            for source in item:
                for k, pair in source.entries.items():
                    if k not in explicit and k not in entries:
                        entries[k] = pair
        node.entries = entries

    def _finish_document(self, root: Node, index: int) -> None:
        if isinstance(root, ScalarNode) and root.value is None and root.start == root.end:
            return  # an empty document, e.g. after a trailing '---'
        self.nonempty += 1
        if self.failed:
            return
        if not isinstance(root, MapNode):
            kind = "a scalar" if isinstance(root, ScalarNode) else "a list"
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
        self.documents.append((index, data, SourceMap(root, self.lines)))

    def _construct(self, node: Node, depth: int) -> Any:
        self.count += 1
        if self.count > self.budget:
            raise _Limit(f"aliases expand this document by more than {MAX_ALIAS_NODES:,} nodes")
        if isinstance(node, ScalarNode):
            return node.value
        if depth > MAX_DEPTH:
            raise _Limit(f"aliases nest this document deeper than {MAX_DEPTH} levels")
        if isinstance(node, SeqNode):
            return [self._construct(item, depth + 1) for item in node.items]
        assert isinstance(node, MapNode)
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
            pair = "[]" if isinstance(unclosed[-1], SeqNode) else "{}"
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
