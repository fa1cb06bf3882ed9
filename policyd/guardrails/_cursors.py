"""One rule's place in a scan and its next step: the windowed regex step, the private-key
extent, and the remembered forward searches they use (see :mod:`policyd.guardrails._scan`
for what a step finds and why it is linear)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import re2

from policyd.guardrails._regex import options
from policyd.guardrails._shape import Shape, shape_of

if TYPE_CHECKING:
    from policyd.guardrails._rules import Rule

LOOKAHEAD = 64  # the most bytes past a match any rule's validator reads (Rule.lookahead)
RE2_LOOK = 1  # bytes past a searched range RE2 reads (\b, $): a stream searches short of it
CONTEXT = 64  # bytes kept before the scan position (boundaries, validators)
KEY_MAX = 64 * 1024  # longest private-key block (a 16,384-bit RSA key is ~12.7 KB)
_END_MAX = 128  # longest END marker
MAX_FINDINGS = 4096  # per plain pattern and text; past it, each match covers its window
MAX_STRIDE = 64  # windows one search may span after steps that found nothing

_UN = re2._Anchor.UNANCHORED
_AT = re2._Anchor.ANCHOR_START
Spans = list[tuple[int, int]]


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    """A helper regex (prefix, trigger), compiled once per process."""
    return re2.compile(pattern, options())._regexp


def _latin1(pattern: str) -> Any:
    opts = options()
    opts.encoding = re2.Options.Encoding.LATIN1
    return re2.compile(pattern.encode("latin-1"), opts)._regexp


@functools.lru_cache(maxsize=512)
def _width(pattern: str) -> int:
    return shape_of(pattern).maxw or _END_MAX


@functools.lru_cache(maxsize=512)
def _last_of(cont: frozenset[int]) -> Any:
    """``.*[^cont]`` on raw bytes: anchored, its end is just past the last such byte."""
    others = "".join(f"\\x{b:02x}" for b in range(256) if b not in cont)
    return _latin1(f"(?s).*[{others}]")


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


class CursorPlan:
    """What a rule's cursor needs that no scan changes: its regex, the bytes that end a
    run, the prefix or trigger it skips to. Worked out once per rule set (a cursor is
    made per rule and scan; making these each time cost more than a short scan)."""

    __slots__ = (
        "breakers",
        "brk",
        "coarse_after",
        "literal",
        "pre",
        "pre_cont",
        "pre_len",
        "regex",
    )

    def __init__(self, rule: Rule, shape: Shape):
        self.regex = rule.regex._regexp
        self.breakers = frozenset(range(256)) - shape.cont if shape.cont is not None else None
        # plain patterns and terms (not validated PII candidates, whose run is the value)
        plain = not rule.pem and (rule.validate is None or rule.name_of is not None)
        self.coarse_after = MAX_FINDINGS if plain else -1
        self.brk = _last_of(shape.cont) if shape.cont is not None else None
        self.pre: Any = None
        self.pre_len = 0
        self.literal: bytes | None = None
        self.pre_cont: frozenset[int] | None = None
        if rule.trigger:
            self.pre = _compiled(rule.trigger)
            self.pre_len = _width(rule.trigger)
            self.pre_cont = shape_of(rule.trigger).cont
        elif shape.prefix:
            flags = "(?i)" if shape.icase else ""
            self.pre = _compiled(flags + re2.escape(shape.prefix))
            self.pre_len = len(shape.prefix.encode())
            literal = shape.prefix.encode()
            self.literal = literal.lower() if shape.icase else literal


class _RegexCursor:
    """Where one rule's scan is, and how to take its next step (see the module doc)."""

    __slots__ = (
        "_breakers",
        "_brk",
        "_brk_at",
        "_brk_to",
        "_literal",
        "_pre",
        "_pre_cont",
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
        "stride",
    )

    def __init__(self, rule: Rule, shape: Shape, plan: CursorPlan | None = None):
        if plan is None:
            plan = CursorPlan(rule, shape)
        self.rule = rule
        self.shape = shape
        self._regex = plan.regex
        self.pos = 0
        self.count = 0
        self.stride = 2  # windows the next step searches (doubles while steps find nothing)
        # waiting for a byte the pattern cannot contain (or a full window): which bytes
        self.idle: frozenset[int] | None = None
        self.idle_until = 0
        self.fresh: frozenset[int] | None = None  # bytes new since the last step (a stream)
        self.fresh_from = 0  # ... from this offset on
        self._breakers = plan.breakers
        self.coarse_after = plan.coarse_after
        self._brk = plan.brk
        self._brk_at = -1
        self._brk_to = 0
        self._pre = plan.pre
        self._pre_len = plan.pre_len
        self._literal = plan.literal
        self._pre_cont = plan.pre_cont  # every byte a trigger match can hold
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
        return limit if final else max(pos, self.tail_start(buf, limit))

    def tail_start(self, buf: _Buf, limit: int) -> int:
        """Where an occurrence of the prefix cut off at ``limit`` could start: the first
        position whose text up to ``limit`` begins the literal prefix (a trigger: the
        first of its last bytes after which every byte is one a trigger match can hold)."""
        if self._literal is None:
            return self._trigger_tail(buf, limit)
        literal = self._literal
        b0 = buf.bbase
        data = buf.data
        lo, hi = max(limit - len(literal) + 1, b0) - b0, limit - b0
        if lo >= hi:
            return limit
        icase = self.shape.icase
        if icase and max(data[lo:hi]) >= 0x80:
            return lo + b0  # RE2 folds k and s to non-ASCII signs: hold it all
        firsts = {literal[0], ord(chr(literal[0]).upper())} if icase else {literal[0]}
        best = hi
        for first in firsts:
            at = data.find(first, lo, hi)
            while 0 <= at < best:
                tail = data[at:hi]
                if literal.startswith(tail.lower() if icase else tail):
                    best = at
                    break
                at = data.find(first, at + 1, hi)
        return best + b0

    def _trigger_tail(self, buf: _Buf, limit: int) -> int:
        lo = limit - self._pre_len + 1
        cont = self._pre_cont
        if cont is None:
            return lo
        # a trigger match cut off at ``limit`` holds only ``cont`` bytes before it, so it
        # starts after the last byte outside ``cont``
        b0 = buf.bbase
        data = buf.data
        stop = max(lo, b0)
        at = limit
        while at > stop and data[at - 1 - b0] in cont:
            at -= 1
        return lo if at == stop else at

    def next(self, buf: _Buf, hard: int, final: bool, nohit: bool = False) -> Spans | None:
        """The next match's group spans (absolute bytes), or None: more text needed, or
        (when ``final``) no more matches. ``nohit``: the rule matches nowhere in the text
        from ``pos`` on (a set pass said so), so every step only moves ``pos``.

        A stream searches up to its last byte but one (RE2 reads one byte past a range
        for ``\\b`` and ``$``); a match ending past ``hard`` waits there, since its
        validator reads ``lookahead`` bytes past it. Without a match, look-ahead does
        not matter: a stream is held back only by what a match could still become."""
        window = self.rule.window
        n = buf.end
        top = n if final else n - RE2_LOOK
        while self.pos < top:
            pos = self.pos
            if self._pre is not None:
                pos = self.pos = self._skip_to_prefix(buf, pos, top, final)
                if pos >= top:
                    break
            span = min(self.stride * window, top - pos)
            if span >= 2 * window:
                # any match starting before ``bound`` lies within [pos, wend)
                wend, bound = pos + span, pos + span - window + 1
            elif final:
                wend = bound = n
            else:
                wend = bound = pos
                maxw = self.shape.maxw
                if self._brk is not None:
                    brk = self._last_breaker(buf, pos, n)  # a match cannot cross it
                    if brk >= pos:
                        wend, bound = brk, brk + 1
                if maxw is not None and maxw <= window and top - maxw + 1 > bound:
                    wend, bound = top, top - maxw + 1
                if bound <= pos:
                    if self._pre is None and (maxw is None or maxw > window):
                        self.idle, self.idle_until = self._breakers, pos + 2 * window
                    return None
            found = [] if nohit else buf.search(self._regex, _UN, pos, wend)
            if not found or found[0][0] >= bound:
                self.pos = bound
                if not found and self.stride < MAX_STRIDE:
                    self.stride *= 2  # nothing here: look further ahead in one search
                continue
            self.stride = 2
            start = found[0][0]
            if found[0][1] > hard:  # its validator would read bytes not here yet
                self.pos = start  # no match starts before this one
                return None
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

    def __init__(self, rule: Rule, shape: Shape, plan: CursorPlan | None = None):
        self._head = _RegexCursor(rule, shape, plan)
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
