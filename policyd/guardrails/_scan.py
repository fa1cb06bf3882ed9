"""The linear, resumable scan behind every rule set: one algorithm for a text and a stream.

What a rule finds (non-overlapping, left to right, positions in UTF-8 bytes):

* the next match starts at the leftmost position ``s`` (at or after the end of the last
  one) where the pattern matches *within the rule's window*: the ``window`` bytes from
  ``s``; the match is RE2's leftmost-first match in ``[s, s + window)``, so a match is at
  most ``window`` bytes long;
* a private-key header extends to its ``-----END ... PRIVATE KEY-----`` marker when the
  body up to it is PEM text and the marker starts within ``KEY_MAX`` bytes of the
  header; otherwise to the end of its base64 body (also at most ``KEY_MAX`` bytes).

A step looks at ``2 * window`` bytes (plus memoised forward searches for the key); after
a step that found nothing the next looks twice as far, up to ``MAX_STRIDE`` windows, and
moves on by all but one window of what it searched (a match starting there would lie
inside it), so a long text without a match costs a few searches instead of one per
window. A step that finds a match sets the stride back to two windows. Each byte is
searched a bounded number of times, so a scan is linear in the text whatever the
pattern: a pattern like
``x(?:.*y)?`` no longer makes each of its matches rescan the rest of the text. Past
``MAX_FINDINGS`` matches of one plain pattern (or term list) in one text, each further
match covers its whole window (redaction errs on the side of hiding more), so a text
that is nothing but matches costs one step per window, not one per character.

The same :class:`RuleCursor` runs on a whole text and on a stream fed chunk by chunk; a
step is taken only once the text it depends on is there, so a stream finds exactly what
one scan of the whole text finds. :attr:`RuleCursor.safe` says how far every finding is
known: a stream can release text up to it. With a rule's :class:`~._shape.Shape` a step
can be taken early: a match cannot cross a byte the pattern cannot contain, cannot be
longer than its widest form, and starts with its literal prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import re2

from policyd.guardrails._core import Finding
from policyd.guardrails._cursors import (
    CONTEXT,
    KEY_MAX,
    LOOKAHEAD,
    MAX_FINDINGS,
    RE2_LOOK,
    Cursor,
    CursorPlan,
    Spans,
    _Buf,
    _PemCursor,
    _RegexCursor,
)
from policyd.guardrails._regex import _CONTINUATION_BYTES, options
from policyd.guardrails._shape import Shape

if TYPE_CHECKING:
    from policyd.guardrails._rules import Rule

_TRIM = 16 * 1024  # bytes of settled text before the buffer is cut

__all__ = ["CONTEXT", "KEY_MAX", "LOOKAHEAD", "MAX_FINDINGS", "Gates", "RuleCursor", "scan_rules"]


class Gates:
    """Two RE2 set passes a stream makes per chunk over the text still in play: which rules
    match anywhere in it, and which rules' start (prefix or trigger) occurs in it. A rule
    in neither moves on without a search of its own."""

    __slots__ = ("_prefix_rule", "_prefixes", "_rules")

    def __init__(self, rules: Sequence[Rule], shapes: Sequence[Shape]):
        self._rules = re2.Set.SearchSet(options())
        for rule in rules:
            self._rules.Add(rule.regex.pattern)
        self._rules.Compile()
        self._prefixes = re2.Set.SearchSet(options())
        self._prefix_rule: list[int] = []
        for i, (rule, shape) in enumerate(zip(rules, shapes, strict=True)):
            pattern = _prefix_pattern(rule, shape)
            if pattern is not None:
                self._prefixes.Add(pattern)
                self._prefix_rule.append(i)
        if self._prefix_rule:
            self._prefixes.Compile()

    def hits(self, data: bytes) -> tuple[set[int], set[int]]:
        """(rules matching in ``data``, rules whose prefix occurs in it)."""
        rules = set(self._rules.Match(data) or ())
        prefixes = (
            {self._prefix_rule[i] for i in self._prefixes.Match(data) or ()}
            if self._prefix_rule
            else set()
        )
        return rules, prefixes


def _prefix_pattern(rule: Rule, shape: Shape) -> str | None:
    if rule.trigger:
        return rule.trigger
    if shape.prefix:
        return ("(?i)" if shape.icase else "") + re2.escape(shape.prefix)
    return None


class RuleCursor:
    """One scan of a rule set over a text fed in pieces (see the module docstring)."""

    __slots__ = (
        "_buf",
        "_cursors",
        "_gates",
        "_index",
        "_more",
        "_pending",
        "_reach",
        "_safe",
        "_seen",
        "_total",
    )

    def __init__(
        self,
        rules: Sequence[Rule],
        shapes: Sequence[Shape],
        active: Sequence[int],
        gates: Gates | None = None,
        plans: Sequence[CursorPlan] | None = None,
    ):
        self._gates = gates
        self._index = list(active)
        self._cursors: list[Cursor] = [
            (_PemCursor if rules[i].pem else _RegexCursor)(
                rules[i], shapes[i], None if plans is None else plans[i]
            )
            for i in active
        ]
        self._buf = _Buf()
        self._more: list[str] = []
        self._pending: list[tuple[int, int, Rule, str | None]] = []
        self._reach = -1
        self._safe = 0
        self._seen = 0
        self._total = 0

    @property
    def safe(self) -> int:
        """Characters before this offset hold no finding not yet returned."""
        return self._safe

    @property
    def work(self) -> int:
        """UTF-8 bytes searched so far: linear in the text, whatever the rules."""
        return self._buf.work

    def feed(self, chunk: str) -> None:
        if chunk:
            self._more.append(chunk)
            self._total += len(chunk)

    def load(self, text: str, data: bytes) -> None:
        """Feed a whole text whose UTF-8 bytes (``surrogatepass``) the caller has already."""
        assert not self._total, "load() starts a cursor"
        if text:
            self._buf.text, self._buf.data, self._total = text, data, len(text)

    def advance(self, final: bool) -> list[Finding]:
        """Take every step the text fed so far allows; the findings now settled."""
        buf = self._buf
        if self._more:
            more = "".join(self._more)
            self._more = []
            buf.text += more
            buf.data += more.encode("utf-8", "surrogatepass")
        n = buf.end
        # bytes that reached a cursor's range since the last advance
        fresh_from = max(self._seen - LOOKAHEAD, buf.bbase)
        # only a stream's steps before the end read it (O(n) in the text, so not made then)
        fresh = frozenset() if final else frozenset(buf.data[fresh_from - buf.bbase :])
        self._seen = n
        hits: set[int] | None = None
        starts: set[int] = set()
        if self._gates is not None and not final and self._cursors:
            low = max(min(c.pos for c in self._cursors) - 1 - buf.bbase, 0)
            hits, starts = self._gates.hits(buf.data[low:])
        for index, cursor in zip(self._index, self._cursors, strict=True):
            # a match is taken only once the bytes its validator reads have come
            hard = n if final else n - cursor.rule.lookahead
            nohit = hits is not None and index not in hits
            if isinstance(cursor, _RegexCursor):
                if nohit and cursor._pre is not None and index not in starts:
                    # no match and no start in the text in play: skip all but its tail
                    cursor.pos = max(cursor.pos, cursor.tail_start(buf, n - RE2_LOOK))
                    continue
                cursor.fresh, cursor.fresh_from = (None if final else fresh), fresh_from
                if cursor.idle is not None:
                    reach = n - RE2_LOOK
                    if not final and reach < cursor.idle_until and fresh.isdisjoint(cursor.idle):
                        continue  # nothing it waits for arrived: its next step is the same
                    cursor.idle = None
            while (spans := cursor.next(buf, hard, final, nohit)) is not None:
                self._found(cursor, spans)
        frontier = n if final else min((c.pos for c in self._cursors), default=n)
        frontier = min(frontier, n)
        out = self._settle(frontier)
        self._safe = self._char_at(frontier) if frontier < n else buf.base + len(buf.text)
        if not final:  # a finished scan's buffer is dropped with it: cutting it is wasted
            self._trim(min(frontier, n) - CONTEXT)
        return out

    def _found(self, cursor: Cursor, spans: Spans) -> None:
        rule = cursor.rule
        start, end = spans[rule.group] if rule.group < len(spans) else (-1, -1)
        if start < 0:
            return
        buf = self._buf
        b0 = buf.bbase
        if rule.validate is None:
            found = [(start, end)]
        else:
            found = [(s + b0, e + b0) for s, e in rule.validate(buf.data, start - b0, end - b0)]
            whole = spans[0]
            cut = whole[1] - whole[0] >= rule.window - 8
            if cut and isinstance(cursor, _RegexCursor):  # a run cut by the window:
                # rescan its tail, so no value is split between two candidates
                last = max((e for _, e in found), default=whole[0] + 1)
                cursor.pos = max(cursor.pos - 64, last, whole[0] + 1)
        name = rule.rule_id
        for s, e in found:
            if rule.name_of is not None:
                name = rule.name_of(buf.data, s - b0, e - b0)
            self._pending.append((s, e, rule, name))

    def _settle(self, frontier: int) -> list[Finding]:
        """Findings starting before ``frontier`` are final: drop contained ones, convert."""
        ready = [p for p in self._pending if p[0] < frontier]
        if not ready:
            return []
        self._pending = [p for p in self._pending if p[0] >= frontier]
        ready.sort(key=lambda r: (r[0], -r[1], r[2].priority))
        kept = []
        for item in ready:
            if item[2].exclusive:
                if item[1] <= self._reach:
                    continue
                self._reach = item[1]
            kept.append(item)
        chars = self._chars([o for s, e, _, _ in kept for o in (s, e)])
        return [
            Finding(rule.kind, chars[s], chars[e], rule.label, name) for s, e, rule, name in kept
        ]

    def _chars(self, offsets: list[int]) -> dict[int, int]:
        """Absolute byte offsets -> absolute character offsets, one pass over the buffer."""
        buf = self._buf
        if len(buf.data) == len(buf.text):  # ASCII: a byte is a character
            shift = buf.base - buf.bbase
            return {off: off + shift for off in offsets}
        table: dict[int, int] = {}
        prev_b, prev_c = buf.bbase, buf.base
        for off in sorted(set(offsets)):
            seg = buf.data[prev_b - buf.bbase : off - buf.bbase]
            prev_c += len(seg) - len(seg.translate(None, _NON_CONTINUATION))
            prev_b = off
            table[off] = prev_c
        return table

    def _char_at(self, offset: int) -> int:
        return self._chars([offset])[offset]

    def _trim(self, keep_from: int) -> None:
        buf = self._buf
        cut = keep_from - buf.bbase
        if cut < _TRIM:
            return
        data = buf.data
        while cut > 0 and 0x80 <= data[cut] < 0xC0:
            cut -= 1
        head = data[:cut]
        chars = len(head) - len(head.translate(None, _NON_CONTINUATION))
        buf.text = buf.text[chars:]
        buf.data = data[cut:]
        buf.base += chars
        buf.bbase += cut


_NON_CONTINUATION = bytes(b for b in range(256) if b not in _CONTINUATION_BYTES)


def scan_rules(
    rules: Sequence[Rule],
    shapes: Sequence[Shape],
    active: Sequence[int],
    text: str,
    data: bytes | None = None,
    plans: Sequence[CursorPlan] | None = None,
) -> list[Finding]:
    """Every finding of the ``active`` rules in ``text`` (the whole text at once);
    ``data`` is its UTF-8 bytes when the caller has them, ``plans`` the rules' plans."""
    cursor = RuleCursor(rules, shapes, active, plans=plans)
    if data is None:
        cursor.feed(text)
    else:
        cursor.load(text, data)
    return cursor.advance(final=True)


NameOf = Callable[[bytes, int, int], str | None]
