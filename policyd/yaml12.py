"""YAML 1.2 core-schema reading: one decoded file's text -> plain data, nodes and diagnostics.

Owns composing parser events into nodes and data (the events come from libyaml or PyYAML's
pure parser, chosen in :mod:`policyd.yamlevents`; scalar values are resolved by
:mod:`policyd.yamlscalars`, which owns :class:`YamlInt` / :class:`YamlFloat`), and the
YAML-level diagnostics PD001-PD003 and PD006-PD009 (what a syntax error says is
:mod:`policyd.yamlsyntax`'s).  Files, decoding and
:class:`~policyd.loader.Document` live in :mod:`policyd.loader`.

- booleans are only ``true``/``false`` (any of 3 casings); ``yes``/``on``/``no`` stay strings;
  null is ``~``, ``null`` or empty; ints are decimal, ``0o`` or ``0x``; floats include ``.inf``
  and ``.nan``; no sexagesimal numbers, ``_`` separators or implicit timestamps.
- numbers are :class:`YamlInt` / :class:`YamlFloat`, which keep the text as written (``.raw``).
- only the standard tags ``!!str !!int !!float !!bool !!null !!map !!seq`` are accepted.
- merge keys (``<<: *defaults``, or a list of aliases) are supported: keys written in the
  mapping win, then earlier merge sources over later ones.  ``"<<"`` quoted is a plain key.
- aliases are expanded into copies (the data is always a tree), bounded by
  :data:`MAX_ALIAS_NODES` nodes per file and :data:`MAX_DEPTH` levels of nesting; merge
  keys read at most :data:`MAX_MERGE_READS` entries of their sources per file, plus
  :data:`MERGE_READS_PER_NODE` per node read, so the work stays linear in the file.
- a document whose reading found an error is left out of ``documents``; empty documents (a
  trailing ``---``) are skipped silently; a document's index counts every document in the file.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml import events as ev
from yaml.reader import ReaderError

from policyd.diagnostics import Diagnostic, Severity
from policyd.sourcemap import Lines, MapNode, Node, ScalarNode, SeqNode, SourceMap
from policyd.yamlevents import (
    CEvents,
    EventsDiffer,
    PureEvents,
    c_events_may_differ,
    has_c_parser,
)
from policyd.yamlscalars import (
    ALLOWED_TAGS,
    BIG_INT,
    MAX_INT_CHARS,
    NO_VALUE,
    SCALAR_TAGS,
    STD,
    YamlFloat,
    YamlInt,
    resolve_plain,
    resolve_tagged,
    short_tag,
)
from policyd.yamlsyntax import syntax_problem

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_MERGE_READS",
    "MERGE_READS_PER_NODE",
    "FileReader",
    "YamlFloat",
    "YamlInt",
]

MAX_ALIAS_NODES = 100_000
MAX_DEPTH = 64
#: entries of merge sources (``<<: *name``) read per file, plus MERGE_READS_PER_NODE for
#: each node read so far: a chain of mappings each merging the one before copies a number
#: of entries that grows with the square of its length; past this bound the file is
#: refused (PD006) instead of read for minutes
MAX_MERGE_READS = 1_000_000
MERGE_READS_PER_NODE = 5


# --- composing events into nodes and data --------------------------------------------------


_Source = CEvents | PureEvents


class _Limit(Exception):
    pass


class _Frame:
    """A collection being composed; ``order`` (keys and merges in file order) only once a
    merge key is seen, since without one the written entries are already in order."""

    __slots__ = ("anchor", "flow", "key", "node", "order")

    def __init__(self, node: SeqNode | MapNode, anchor: str | None, flow: bool) -> None:
        self.node = node
        self.anchor = anchor
        self.flow = flow
        self.key: Node | None = None
        self.order: list[tuple[str, Any]] | None = None  # ("key", k) | ("merge", nodes)


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
        # per file: the bounds on alias expansion and merging count across documents
        self.composed_before = 0  # nodes of the file's earlier documents
        self.alias_left = MAX_ALIAS_NODES  # alias expansion left for the file
        self.merge_reads = 0  # entries of merge sources read in the file
        self.anchors: dict[str, Node] = {}  # per document, like everything below
        self.building: set[str] = set()
        self.aliases: list[int] = []
        self.composed = self.count = self.budget = 0
        self.merge_over: tuple[int, int] | None = None  # (where, bound) once past it
        self.failed = False
        self.stack: list[_Frame] = []

    def error(self, index: int, code: str, message: str, hint: str) -> None:
        pos = self.lines.position(index)
        diagnostic = Diagnostic(
            self.file, pos.line, pos.column, Severity.ERROR, code, message, hint
        )
        self.diagnostics.append(diagnostic)

    def run(self) -> None:
        """Read the file: with libyaml's events when they are the pure parser's, else pure."""
        if has_c_parser() and not c_events_may_differ(self.lines.text):
            try:
                self.run_c()
                return
            except (yaml.YAMLError, EventsDiffer, UnicodeError):  # libyaml's error or difference
                self.diagnostics, self.documents, self.nonempty = [], [], 0
        self.run_pure()

    def run_c(self) -> None:
        """Read with libyaml's events only; raises where :meth:`run` falls back to pure."""
        source = CEvents(self.lines.text)
        try:
            self._stream(source)
        finally:
            source.dispose()

    def run_pure(self) -> None:
        """Read with PyYAML's pure parser only: the reference, and the one for syntax errors."""
        try:
            source = PureEvents(self.lines.text)
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

    def _stream(self, source: _Source) -> None:
        index = -1
        while not isinstance(event := source.get_event(), ev.StreamEndEvent):
            if isinstance(event, ev.DocumentStartEvent):
                index += 1
                self._document(source, index)

    def _document(self, source: _Source, index: int) -> None:
        self.anchors, self.building, self.aliases = {}, set(), []
        self.composed_before += self.composed
        self.composed, self.failed, self.merge_over = 0, False, None
        stack: list[_Frame] = []
        self.stack = stack  # for syntax errors: which brackets are still open
        root: Node | None = None
        get_event, scalar_start = source.get_event, source.scalar_start
        # libyaml's common scalar (no tag, no anchor, quoted or plain with text) is composed
        # here: what CEvents.scalar_start and _scalar do for it, without the two calls
        fast, scalar_starts = type(source) is CEvents, source.scalar_starts
        while True:
            event: Any = get_event()
            kind = type(event)
            start, end = event.start_mark.index, event.end_mark.index
            if kind is ev.ScalarEvent:
                in_flow = bool(stack) and stack[-1].flow
                style, text = event.style, event.value
                if (
                    fast
                    and event.tag is None
                    and event.anchor is None
                    and ((style == "" and text) or style == "'" or style == '"')
                ):
                    if style == "":
                        event.style = style = None  # plain, as the pure parser says
                        if in_flow and "?" in text:
                            raise EventsDiffer
                    scalar_starts[end] = start
                    implicit = event.implicit[0]
                    value = resolve_plain(text) if implicit else text
                    if value is BIG_INT:
                        node: Node = self._scalar(event, start, end, start)
                    else:
                        node = ScalarNode(start, end, start, value, style)
                        if implicit and text == "<<":
                            node.merge = True
                        self.composed += 1
                else:
                    text_start = scalar_start(event, start, end, in_flow)
                    node = self._scalar(event, start, end, text_start)
            elif kind is ev.MappingStartEvent or kind is ev.SequenceStartEvent:
                self._open(source, event, start, stack)
                continue
            elif kind is ev.MappingEndEvent or kind is ev.SequenceEndEvent:
                frame = stack.pop()
                node = frame.node
                node.end = end
                if frame.order is not None:
                    self._merge(frame)
                if frame.key is not None:  # cannot happen with well-formed events
                    self.failed = True
                if frame.anchor:
                    self.building.discard(frame.anchor)
                    self.anchors[frame.anchor] = node
            elif kind is ev.AliasEvent:
                node = self._alias(event.anchor or "", start)
            else:  # the document's end
                break
            if not stack:
                root = node
                continue
            frame = stack[-1]
            collection = frame.node
            if type(collection) is SeqNode:
                collection.items.append(node)
            elif frame.key is None:
                frame.key = node
            else:
                key, frame.key = frame.key, None
                if type(key) is ScalarNode and not key.merge and frame.order is None:
                    name = key.value  # the common entry, as _entry adds it
                    entries = collection.entries  # type: ignore[union-attr]
                    if type(name) is str and name not in entries:
                        entries[name] = (key, node)
                        continue
                self._entry(frame, key, node)
        if root is not None:
            self._finish_document(root, index)

    def _open(self, source: _Source, event: Any, start: int, stack: list[_Frame]) -> None:
        is_map = type(event) is ev.MappingStartEvent
        source.check_collection(event)
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

    def _scalar(self, event: ev.ScalarEvent, start: int, end: int, text_start: int) -> Node:
        tag, text = event.tag, event.value
        if tag is None and event.implicit[0]:
            value = resolve_plain(text)
        elif tag is None or tag == "!" or tag == STD + "str":
            value = text
        elif tag in SCALAR_TAGS:
            value = resolve_tagged(tag, text)
            if value is NO_VALUE:
                message = f"{text!r} is not a valid {short_tag(tag)}"
                self.error(start, "PD007", message, "fix the value or remove the tag")
        else:
            self._bad_tag(tag, start)
            value = NO_VALUE
        if value is BIG_INT:
            message = f"number has more than {MAX_INT_CHARS} digits"
            self.error(start, "PD006", message, "shorten it")
            value = NO_VALUE
        if value is NO_VALUE:
            self.failed = True
        node = ScalarNode(start, end, text_start, value, event.style)
        if text == "<<" and tag is None and event.implicit[0]:
            node.merge = True
        self.composed += 1
        if event.anchor:
            self.anchors[event.anchor] = node
        return node

    def _bad_tag(self, tag: str, start: int) -> None:
        hint = "policy files hold plain data; remove the tag (allowed: " + ALLOWED_TAGS + ")"
        self.error(start, "PD007", f"unsupported tag {short_tag(tag)}", hint)

    def _check_collection_tag(self, tag: str | None, kind: str, start: int) -> None:
        if tag is not None and tag != "!" and tag != STD + kind:
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
        return ScalarNode(start, start, start, NO_VALUE, None)  # placeholder keeps keys paired

    def _entry(self, frame: _Frame, key: Node, node: Node) -> None:
        """Add ``key: node`` to the mapping of ``frame``: an entry, or a merge key's sources."""
        entries = frame.node.entries  # type: ignore[union-attr]
        if type(key) is ScalarNode and key.merge:
            sources = node.items if isinstance(node, SeqNode) else [node]
            if all(isinstance(s, MapNode) for s in sources):
                if frame.order is None:
                    frame.order = [("key", k) for k in entries]
                frame.order.append(("merge", sources))
            else:
                message = "merge key '<<' needs a mapping or a list of mappings"
                hint = "write '<<: *name' or '<<: [*a, *b]' with anchored mappings"
                self.error(node.start, "PD009", message, hint)
                self.failed = True
            return
        name = key.value if type(key) is ScalarNode and type(key.value) is str else None
        if name is None:
            name = self._key_name(key)
        if name is None:
            self.failed = True
        elif name in entries:
            first = self.lines.position(entries[name][0].start)
            hint = (
                f"{name!r} is already set at line {first.line}, column {first.column}; "
                "YAML keeps only one of them, so remove or rename one"
            )
            self.error(key.start, "PD002", f"duplicate key {name!r}", hint)
            self.failed = True
        else:
            entries[name] = (key, node)
            if frame.order is not None:
                frame.order.append(("key", name))

    def _key_name(self, key: Node) -> str | None:
        if isinstance(key, ScalarNode) and isinstance(key.value, str):
            return key.value
        if isinstance(key, ScalarNode) and key.value is NO_VALUE:
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

    def _merge(self, frame: _Frame) -> None:
        """Apply merge keys: written keys win, then earlier merge sources over later ones."""
        node = frame.node
        assert isinstance(node, MapNode) and frame.order is not None
        if self.merge_over is not None:
            return  # the document is refused: merging more would only cost time
        explicit = node.entries
        entries: dict[str, tuple[Node, Node]] = {}
        merged: set[int] = set()
        nodes = self.composed_before + self.composed  # read so far: none are while merging
        bound = MAX_MERGE_READS + MERGE_READS_PER_NODE * nodes
        for kind, item in frame.order:
            if kind == "key":
                entries[item] = explicit[item]
                continue
            for source in item:
                if id(source) in merged:
                    continue  # merged already: every key of it is in entries by now
                merged.add(id(source))
                self.merge_reads += len(source.entries)
                if self.merge_reads > bound:
                    self.merge_over = (node.start, bound)  # reported when the document ends
                    return
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
        hint = "aliases are bounded to keep loading safe; write fewer, smaller repeats"
        if self.merge_over is not None:
            where, bound = self.merge_over
            message = f"merge keys ('<<') in this file read more than {bound:,} entries here"
            hint = (
                f"merging is bounded ({MAX_MERGE_READS:,} entries plus "
                f"{MERGE_READS_PER_NODE} per node of the file); merge smaller mappings, "
                "or fewer times"
            )
            self.error(where, "PD006", message, hint)
            return
        self.count, self.budget = 0, self.composed + self.alias_left
        try:
            # without aliases the nodes are a tree within both limits (composing enforces
            # the depth, and there are `composed` nodes), so nothing needs counting
            data = self._construct(root, 1) if self.aliases else _plain(root)
        except _Limit as exc:
            where = self.aliases[0] if self.aliases else root.start
            self.error(where, "PD006", str(exc), hint)
            return
        self.alias_left -= max(0, self.count - self.composed)
        self.documents.append((index, data, SourceMap(root, self.lines)))

    def _construct(self, node: Node, depth: int) -> Any:
        self.count += 1
        if self.count > self.budget:
            what = "this document" if self.alias_left == MAX_ALIAS_NODES else "this file"
            raise _Limit(f"aliases expand {what} by more than {MAX_ALIAS_NODES:,} nodes")
        if isinstance(node, ScalarNode):
            return node.value
        if depth > MAX_DEPTH:
            raise _Limit(f"aliases nest this document deeper than {MAX_DEPTH} levels")
        if isinstance(node, SeqNode):
            return [self._construct(item, depth + 1) for item in node.items]
        assert isinstance(node, MapNode)
        return {k: self._construct(v, depth + 1) for k, (_, v) in node.entries.items()}

    def _syntax_error(self, exc: yaml.MarkedYAMLError) -> None:
        unclosed = [frame.node for frame in self.stack if frame.flow]
        self.error(*syntax_problem(exc, self.lines, unclosed))


def _plain(node: Node) -> Any:
    """The data of a node tree without aliases (what :meth:`FileReader._construct` builds)."""
    if type(node) is ScalarNode:
        return node.value
    if type(node) is SeqNode:
        return [_plain(item) for item in node.items]
    assert type(node) is MapNode
    return {k: _plain(v) for k, (_, v) in node.entries.items()}
