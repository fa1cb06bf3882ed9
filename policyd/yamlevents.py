"""YAML parser events for :mod:`policyd.yaml12`: libyaml's C parser, or PyYAML's pure one.

Owns the two event sources and the rule choosing between them.  Both give PyYAML event objects
whose marks are character indexes into the decoded text, plus :meth:`scalar_start` (where a
scalar's own text starts, after any ``&anchor`` / ``!tag``).  The C parser (``yaml.CParser``,
libyaml) is ~20x faster; the pure parser stays the reference: it reports every syntax error
(its messages are the ones users see), and it reads the few texts on which libyaml 0.2.5
builds different events (:func:`c_events_may_differ`).  :class:`policyd.yaml12.FileReader`
reads a file with C events first and redoes it with pure events when libyaml raises or an
event shows a known difference, so documents, source maps and diagnostics are the pure
parser's in every case.
"""

from __future__ import annotations

import os
import re
from collections import deque
from typing import Any

import yaml
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.scanner import Scanner, ScannerError

from policyd.errors import UsageError

_CParser: Any
try:  # the wheels of PyYAML ship libyaml; a source build without it reads everything pure
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    _CParser = None

__all__ = ["CEvents", "EventsDiffer", "PureEvents", "c_events_may_differ", "has_c_parser"]


class EventsDiffer(Exception):
    """libyaml built an event the pure parser would not build (or would reject)."""


def has_c_parser() -> bool:
    """Whether libyaml's C parser is available (``yaml.__with_libyaml__``) and not turned
    off with ``POLICYD_PURE_YAML=1`` (every file read by the pure parser, as before #17)."""
    return _CParser is not None and os.environ.get("POLICYD_PURE_YAML", "") in ("", "0")


class PureEvents(Reader, Scanner, Parser):
    """PyYAML's pure reader, scanner and parser; remembers where each scalar token starts.

    It also keeps the scanner's possible simple keys in the order they were saved, so that
    finding the stale ones and the nearest one takes a step per key, not a look at every
    key per token: PyYAML looks at all of them (one per open flow collection on the line,
    up to 1,024 characters back) before each token, so ``x: [[[[...]]]]`` 4,000 deep took
    6.4 s. Keys are saved at the reader's position, which only moves on, so in that order
    their lines, indexes and token numbers never decrease: the stale keys are the first
    ones, and the nearest key is the first. Which keys go, which error is raised and which
    key is nearest are PyYAML's.
    """

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        self.scalar_starts: dict[int, int] = {}
        self.saved_keys: deque[tuple[int, Any]] = deque()  # (flow level, key), oldest first

    def save_possible_simple_key(self) -> None:
        keys = self.possible_simple_keys
        before = keys.get(self.flow_level)
        Scanner.save_possible_simple_key(self)
        key = keys.get(self.flow_level)
        if key is not None and key is not before:
            self.saved_keys.append((self.flow_level, key))

    def _oldest_key(self) -> tuple[int, Any] | None:
        """The oldest saved key the scanner still holds (those it dropped are forgotten)."""
        saved, keys = self.saved_keys, self.possible_simple_keys
        while saved:
            level, key = saved[0]
            if keys.get(level) is key:
                return level, key
            saved.popleft()
        return None

    def next_possible_simple_key(self) -> int | None:
        oldest = self._oldest_key()
        return None if oldest is None else int(oldest[1].token_number)

    def stale_possible_simple_keys(self) -> None:
        while (oldest := self._oldest_key()) is not None:
            level, key = oldest
            if key.line == self.line and self.index - key.index <= 1024:
                return  # this key and every later one are still possible
            if key.required:
                raise ScannerError(
                    "while scanning a simple key",
                    key.mark,
                    "could not find expected ':'",
                    self.get_mark(),
                )
            del self.possible_simple_keys[level]

    def get_token(self) -> Any:
        token = Scanner.get_token(self)
        if isinstance(token, yaml.ScalarToken):
            self.scalar_starts[token.end_mark.index] = token.start_mark.index
        return token

    def scalar_start(self, event: Any, start: int, end: int, in_flow: bool) -> int:
        """Where the scalar token of the event spanning ``start:end`` starts (else ``start``)."""
        return self.scalar_starts.get(end, start)

    def check_collection(self, event: Any) -> None:
        """Nothing to check: these are the reference events."""


# Characters on which libyaml 0.2.5 and PyYAML's pure scanner disagree when they appear
# outside a quoted or block scalar: libyaml accepts tabs as separators and inside plain
# scalars (the pure scanner rejects them, with the PD003 diagnostics), and it skips a BOM at
# the start of any line (the pure scanner only at the start of the text).  A text with one of
# them anywhere, even inside quotes, is read by the pure parser; policy files rarely have one.
_PURE_ONLY = ("\t", "\ufeff")


def c_events_may_differ(text: str) -> bool:
    """True when ``text`` has a character on which the two parsers are known to disagree."""
    return any(c in text for c in _PURE_ONLY)


_SPACES = " \r\n\x85\u2028\u2029"
_STD = "tag:yaml.org,2002:"
# Tags read with libyaml: the ones policy files may use.  libyaml accepts tag spellings the
# pure scanner rejects (``!*x*!``); any other tag is an error either way, reported by the pure
# parser's reading.
_TAGS = frozenset({None, "!", *(_STD + t for t in ("str", "int", "float", "bool", "null"))})
_COLLECTION_TAGS = frozenset({None, "!", _STD + "map", _STD + "seq"})
# A block scalar's header as the pure scanner accepts it (libyaml also takes ``|#``).
_BLOCK_HEADER = re.compile(
    r"[|>](?:[-+][1-9]?|[1-9][-+]?)?(?: +(?:#[^\r\n\x85\u2028\u2029]*)?)?"
    r"(?:[\r\n\x85\u2028\u2029]|\Z)"
)


class CEvents:
    """libyaml's events for ``text``; marks count characters, like the pure parser's."""

    def __init__(self, text: str) -> None:
        if _CParser is None:  # pragma: no cover - depends on how PyYAML was built
            raise UsageError("PyYAML was built without libyaml (check has_c_parser() first)")
        self.text = text
        self._parser = _CParser(text)
        self.get_event = self._parser.get_event
        self.scalar_starts: dict[int, int] = {}  # end -> start of each scalar's text

    def scalar_start(self, event: Any, start: int, end: int, in_flow: bool) -> int:
        """Where the scalar's text starts (see :meth:`_after_properties`), after checking
        that the pure parser builds the same event; its plain style becomes None, as there.

        Raises :class:`EventsDiffer` for a tag outside :data:`_TAGS`, a plain scalar with '?'
        in a flow collection (the pure scanner ends it there), an empty value after spaces in
        a flow collection (``{a: }``: the pure parser places it after the ':', libyaml at
        the '}') and a block scalar header the pure scanner rejects.
        """
        if event.tag not in _TAGS:
            raise EventsDiffer
        style, value = event.style, event.value
        if event.anchor or event.tag:
            text_start = self._after_properties(start, end)
        elif style == "" and not value:  # no text: like the pure parser, the start of a
            text_start = self.scalar_starts.get(end, start)  # scalar ending where this is
            if in_flow and start and self.text[start - 1] in _SPACES:
                raise EventsDiffer  # after ': ' libyaml places it at the next token
        else:
            text_start = start
        if style == "":
            event.style = None
            if in_flow and "?" in value:
                raise EventsDiffer
        elif (style == "|" or style == ">") and not _BLOCK_HEADER.match(self.text, text_start):
            raise EventsDiffer
        if style != "" or value:
            self.scalar_starts[end] = text_start
        return text_start

    def check_collection(self, event: Any) -> None:
        """Raises :class:`EventsDiffer` for a tag outside the standard ``!!map``/``!!seq``."""
        if event.tag not in _COLLECTION_TAGS:
            raise EventsDiffer

    def _after_properties(self, start: int, end: int) -> int:
        """Where the scalar text starts in ``start:end``: after ``&anchor``/``!tag`` and the
        spaces, line breaks and comments that follow them; ``start`` when there is no text."""
        text = self.text
        at = start
        while at < end:
            c = text[at]
            if c == "&" or c == "!":  # an anchor or a tag: runs to the next space or break
                while at < end and text[at] not in _SPACES:
                    at += 1
            elif c in _SPACES:
                at += 1
            elif c == "#":  # a comment after the properties, up to the line break
                while at < end and text[at] not in "\r\n\x85\u2028\u2029":
                    at += 1
            else:
                return at
        return start

    def dispose(self) -> None:
        self._parser.dispose()
