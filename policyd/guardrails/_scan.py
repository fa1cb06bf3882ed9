"""The linear, resumable scan behind every rule set: one algorithm for a text and a stream.

What a rule finds (non-overlapping, left to right, positions in UTF-8 bytes):

* the next match starts at the leftmost position ``s`` (at or after the end of the last
  one) where the pattern matches *within the rule's window*: the ``window`` bytes from
  ``s``; the match is RE2's leftmost-first match in ``[s, s + window)``, so a match is at
  most ``window`` bytes long;
* a private-key header extends to its ``-----END ... PRIVATE KEY-----`` marker when the
  body up to it is PEM text and the marker starts within ``KEY_MAX`` bytes of the
  header; otherwise to the end of its base64 body (also at most ``KEY_MAX`` bytes).

Every step looks at no more than ``2 * window`` bytes (plus memoised forward searches for
the key), so a scan is linear in the text whatever the pattern: a pattern like
``x(?:.*y)?`` no longer makes each of its matches rescan the rest of the text. Past
``MAX_FINDINGS`` matches of one plain pattern (no validator) in one text, each further
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
from typing import TYPE_CHECKING, Any

import re2

from policyd.guardrails._core import Finding
from policyd.guardrails._regex import _CONTINUATION_BYTES, options
from policyd.guardrails._shape import Shape, shape_of

if TYPE_CHECKING:
    from policyd.guardrails._rules import Rule

LOOKAHEAD = 16  # bytes past a match its validator or an assertion may read
CONTEXT = 64  # bytes kept before the scan position (boundaries, validators)
KEY_MAX = 64 * 1024  # longest private-key block (a 16,384-bit RSA key is ~12.7 KB)
_END_MAX = 128  # longest END marker
_TRIM = 16 * 1024
MAX_FINDINGS = 4096  # per plain pattern and text; past it, each match covers its window

_UN = re2._Anchor.UNANCHORED
_AT = re2._Anchor.ANCHOR_START
Spans = list[tuple[int, int]]


def _latin1(pattern: str) -> Any:
    opts = options()
    opts.encoding = re2.Options.Encoding.LATIN1
    return re2.compile(pattern.encode("latin-1"), opts)._regexp


def _last_of(cont: frozenset[int]) -> Any:
    """``.*[^cont]`` on raw bytes: anchored, its end is just past the last such byte."""
    others = "".join(f"\\x{b:02x}" for b in range(256) if b not in cont)
    return _latin1(f"(?s).*[{others}]")


_HEADER = r"-----BEGIN (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----"
_STOP = re2.compile(
    r"-----END (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----|[^A-Za-z0-9+/=\s:,\-]",
    options(),
)._regexp
_NOT_B64 = re2.compile(r"[^A-Za-z0-9+/=\s]", options())._regexp


class _Buf:
    """The text a cursor still needs: ``data`` starts at absolute byte ``bbase``."""

    __slots__ = ("base", "bbase", "data", "text", "work")

    def __init__(self) -> None:
        self.work = 0  # bytes handed to RE2 so far (the scan's cost, for tests)
        self.text = ""
        self.data = b""
        self.base = 0
        self.bbase = 0

    @property
    def end(self) -> int:
        return self.bbase + len(self.data)

    def search(
        self, regex: Any, anchor: Any, start: int, end: int, short: bool = False
    ) -> list[tuple[int, int]]:
        """``regex`` on absolute byte range [start, end); spans absolute, [] when none.
        ``short``: the regex's matches are short, so RE2 stops soon after the first."""
        b0 = self.bbase
        spans = regex.Match(anchor, self.data, start - b0, end - b0)
        if spans[0][0] < 0:
            self.work += end - start
            return []
        self.work += (spans[0][1] + b0 if short else end) - start
        return [(s + b0, e + b0) if s >= 0 else (-1, -1) for s, e in spans]


class _Memo:
    """A forward search remembered: nothing in [frm, to) but ``found`` (or nothing)."""

    __slots__ = ("found", "frm", "to")

    def __init__(self) -> None:
        self.frm = self.to = -1
        self.found: list[tuple[int, int]] = []

    def first(self, buf: _Buf, regex: Any, start: int, limit: int, straddle: int) -> Spans:
        """The first match of ``regex`` in [start, limit); searches start >= a previous
        one's, so each byte is searched about once (a match up to ``straddle`` bytes long
        may have been cut by the previous limit, so that much is searched again)."""
        if 0 <= self.frm <= start and not self.found:
            if self.to >= limit:
                return []
            begin = max(start, self.to - straddle)
        elif 0 <= self.frm <= start and self.found[0][0] >= start:
            return self.found
        else:
            self.frm = begin = start
        self.found = buf.search(regex, _UN, begin, limit, short=True) if begin < limit else []
        self.to = limit
        return self.found


class _RegexCursor:
    """Where one rule's scan is, and how to take its next step (see the module doc)."""

    __slots__ = (
        "_breakers",
        "_brk",
        "_brk_at",
        "_brk_to",
        "_pre",
        "_pre_len",
        "_pre_memo",
        "_regex",
        "coarse_after",
        "count",
        "fresh",
        "fresh_from",
        "idle",
        "idle_until",
        "pos",
        "rule",
        "shape",
    )

    def __init__(self, rule: Rule, shape: Shape):
        self.rule = rule
        self.shape = shape
        self._regex = rule.regex._regexp
        self.pos = 0
        self.count = 0
        # waiting for a byte the pattern cannot contain (or a full window): which bytes
        self.idle: frozenset[int] | None = None
        self.idle_until = 0
        self.fresh: frozenset[int] | None = None  # bytes new since the last step (a stream)
        self.fresh_from = 0  # ... from this offset on
        self._breakers = frozenset(range(256)) - shape.cont if shape.cont is not None else None
        plain = rule.validate is None and not rule.pem and rule.name_of is None
        self.coarse_after = MAX_FINDINGS if plain else -1
        self._brk = _last_of(shape.cont) if shape.cont is not None else None
        self._brk_at = -1
        self._brk_to = 0
        self._pre: Any = None
        self._pre_len = 0
        if rule.trigger:
            self._pre = re2.compile(rule.trigger, options())._regexp
            self._pre_len = shape_of(rule.trigger).maxw or _END_MAX
        elif shape.prefix:
            flags = "(?i)" if shape.icase else ""
            self._pre = re2.compile(flags + re2.escape(shape.prefix), options())._regexp
            self._pre_len = len(shape.prefix.encode())
        self._pre_memo = _Memo() if self._pre is not None else None

    def _last_breaker(self, buf: _Buf, pos: int, hard: int) -> int:
        if self._brk is None:
            return -1
        start = max(pos, self._brk_to, buf.bbase)
        fresh = self.fresh
        breakers = self._breakers
        if fresh is not None and start >= self.fresh_from and fresh.isdisjoint(breakers or ()):
            self._brk_to = max(self._brk_to, hard)  # no new breaker: the last one stands
            start = hard
        if start < hard:
            found = buf.search(self._brk, _AT, start, hard)
            if found:
                self._brk_at = found[0][1] - 1
            self._brk_to = hard
        return self._brk_at if self._brk_at >= pos else -1

    def _skip_to_prefix(self, buf: _Buf, pos: int, limit: int, final: bool) -> int:
        """The first position >= pos where the literal prefix may start."""
        assert self._pre_memo is not None
        found = self._pre_memo.first(buf, self._pre, pos, limit, self._pre_len)
        if found:
            return found[0][0]
        return limit if final else max(pos, limit - self._pre_len + 1)

    def next(self, buf: _Buf, hard: int, final: bool, nohit: bool = False) -> Spans | None:
        """The next match's group spans (absolute bytes), or None: more text needed, or
        (when ``final``) no more matches. ``nohit``: the rule matches nowhere in the text
        from ``pos`` on (a set pass said so), so every step only moves ``pos``."""
        window = self.rule.window
        n = buf.end
        top = n if final else hard
        while self.pos < top:
            pos = self.pos
            if self._pre is not None:
                pos = self.pos = self._skip_to_prefix(buf, pos, top, final)
                if pos >= top:
                    break
            if pos + 2 * window <= top:
                wend, bound = pos + 2 * window, pos + window + 1
            elif final:
                wend = bound = n
            else:
                wend = bound = pos
                brk = self._last_breaker(buf, pos, hard)
                if brk >= pos:
                    wend, bound = brk, brk + 1
                maxw = self.shape.maxw
                if maxw is not None and maxw <= window and hard - maxw + 1 > bound:
                    wend, bound = hard, hard - maxw + 1
                if bound <= pos:
                    if self._pre is None and (maxw is None or maxw > window):
                        self.idle, self.idle_until = self._breakers, pos + 2 * window
                    return None
            found = [] if nohit else buf.search(self._regex, _UN, pos, wend)
            if not found or found[0][0] >= bound:
                self.pos = bound
                continue
            start = found[0][0]
            if found[0][1] - start <= window:  # what the window would give: no second search
                spans = found
            else:
                spans = buf.search(self._regex, _AT, start, min(start + window, wend))
                if not spans:
                    self.pos = start + 1
                    continue
            if 0 <= self.coarse_after <= self.count:  # so many: cover a window per match
                end = start + window
                if end > top:
                    if not final:
                        self.pos = start
                        return None
                    end = n
                spans = [(start, end)]
            self.count += 1
            self.pos = max(spans[0][1], start + 1)
            return spans
        return None


class _PemCursor:
    """A private-key header, then its extent: held until the END marker or the body's end."""

    __slots__ = ("_b64", "_hdr", "_head", "_stop")

    def __init__(self, rule: Rule, shape: Shape):
        self._head = _RegexCursor(rule, shape)
        self._hdr: tuple[int, int] | None = None
        self._stop = _Memo()
        self._b64 = _Memo()

    @property
    def rule(self) -> Rule:
        return self._head.rule

    @property
    def pos(self) -> int:
        return self._hdr[0] if self._hdr is not None else self._head.pos

    def next(self, buf: _Buf, hard: int, final: bool, nohit: bool = False) -> Spans | None:
        if self._hdr is None:
            spans = self._head.next(buf, hard, final, nohit)
            if spans is None:
                return None
            self._hdr = spans[0]
        hs, he = self._hdr
        end = self._extent(buf, hs, he, buf.end if final else hard, final)
        if end is None:
            return None
        self._hdr = None
        self._head.pos = max(end, he)
        return [(hs, end)]

    def _extent(self, buf: _Buf, hs: int, he: int, top: int, final: bool) -> int | None:
        cap = hs + KEY_MAX
        stop = self._stop.first(buf, _STOP, he, min(top, cap + _END_MAX), _END_MAX)
        if stop and stop[0][0] < cap and buf.data[stop[0][0] - buf.bbase] == 0x2D:
            return stop[0][1]  # the END marker
        if not stop and not final and top < cap + _END_MAX:
            return None
        body = self._b64.first(buf, _NOT_B64, he, min(top, cap), 1)
        if body:
            return body[0][0]
        if not final and top < cap:
            return None
        return min(top, cap)


Cursor = _RegexCursor | _PemCursor


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
    ):
        self._gates = gates
        self._index = list(active)
        self._cursors: list[Cursor] = [
            _PemCursor(rules[i], shapes[i]) if rules[i].pem else _RegexCursor(rules[i], shapes[i])
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
        fresh = frozenset(buf.data[fresh_from - buf.bbase :])
        self._seen = n
        hits: set[int] | None = None
        starts: set[int] = set()
        if self._gates is not None and not final and self._cursors:
            low = max(min(c.pos for c in self._cursors) - 1 - buf.bbase, 0)
            hits, starts = self._gates.hits(buf.data[low:])
        for index, cursor in zip(self._index, self._cursors, strict=True):
            # a validator may read LOOKAHEAD bytes past a candidate; RE2 one character
            ahead = LOOKAHEAD if cursor.rule.validate is not None else 4
            hard = n if final else n - ahead
            nohit = hits is not None and index not in hits
            if isinstance(cursor, _RegexCursor):
                if nohit and cursor._pre is not None and index not in starts:
                    # no match and no start in the text in play: skip all but its tail
                    cursor.pos = max(cursor.pos, hard - cursor._pre_len + 1)
                    continue
                cursor.fresh, cursor.fresh_from = (None if final else fresh), fresh_from
                if cursor.idle is not None:
                    if not final and hard < cursor.idle_until and fresh.isdisjoint(cursor.idle):
                        continue  # nothing it waits for arrived: its next step is the same
                    cursor.idle = None
            while (spans := cursor.next(buf, hard, final, nohit)) is not None:
                self._found(cursor, spans)
        frontier = n if final else min((c.pos for c in self._cursors), default=n)
        frontier = min(frontier, n)
        out = self._settle(frontier)
        self._safe = self._char_at(frontier) if frontier < n else buf.base + len(buf.text)
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
    rules: Sequence[Rule], shapes: Sequence[Shape], active: Sequence[int], text: str
) -> list[Finding]:
    """Every finding of the ``active`` rules in ``text`` (the whole text at once)."""
    cursor = RuleCursor(rules, shapes, active)
    cursor.feed(text)
    return cursor.advance(final=True)


NameOf = Callable[[bytes, int, int], str | None]
