"""Size and complexity of the decision path: functions over 60 lines or of radon rank C+.

    python tools/complexity.py            # the table; exit 1 on an unexplained function
    python tools/complexity.py --all      # every module of policyd/, not only the path

The decision path is what runs inside ``decide()``/``record()`` and a stream's checks:
the engine, stages, request preparation, the CEL runtime, guardrail detectors, budgets and
stores. A function there may be long or branchy only with a reason written below (a
scanner's state machine is one `if` per state; splitting it would scatter one invariant
over several functions). A listed function that is no longer over a limit fails too, so
the list stays true. Cyclomatic complexity is radon's (``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from radon.complexity import cc_rank, cc_visit

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 60
DECISION_PATH = (
    "policyd/engine.py",
    "policyd/decide.py",
    "policyd/decision.py",
    "policyd/request.py",
    "policyd/verdict.py",
    "policyd/cel/runtime.py",
    "policyd/stages",
    "policyd/guardrails",
    "policyd/budgets",
    "policyd/stores",
)

# "module:qualified name" -> why it may stay over a limit.
EXPLAINED: dict[str, str] = {
    "policyd/budgets/counter.py:Counter.maintain": (
        "the ledger's expiry and sweep state machine (tools/mutation.py ledger: 100% of "
        "mutants killed)"
    ),
    "policyd/budgets/counter.py:Counter.settle": (
        "exactly-once settle: settled, expired, lost and unknown reservations each a branch "
        "(ledger mutation score 100%)"
    ),
    "policyd/budgets/windows.py:current_window": (
        "one branch per window kind (calendar units, rolling, in flight); DST-tested in 9 "
        "time zones"
    ),
    "policyd/cel/runtime.py:eq": (
        "CEL semantics case by case as the spec lists them (cross-type numeric equality, map "
        "keys by value); the conformance suite covers each branch"
    ),
    "policyd/cel/runtime.py:map_find": (
        "CEL semantics case by case as the spec lists them (cross-type numeric equality, map "
        "keys by value); the conformance suite covers each branch"
    ),
    "policyd/cel/runtime.py:to_eval_error": (
        "maps each Python error a compiled expression can raise to its CEL error text, one "
        "branch per error"
    ),
    "policyd/guardrails/_cursors.py:_RegexCursor.next": (
        "a scanner's state machine, one branch per state: its linearity "
        "(tests/guardrails/test_guardrails_linear.py counts bytes searched) is easier to hold"
        " in one function"
    ),
    "policyd/guardrails/_scan.py:RuleCursor._settle": (
        "a scanner's state machine, one branch per state: its linearity "
        "(tests/guardrails/test_guardrails_linear.py counts bytes searched) is easier to hold"
        " in one function"
    ),
    "policyd/guardrails/_scan.py:RuleCursor.advance": (
        "a scanner's state machine, one branch per state: its linearity "
        "(tests/guardrails/test_guardrails_linear.py counts bytes searched) is easier to hold"
        " in one function"
    ),
    "policyd/guardrails/_shape.py:_bytes": (
        "classifies a pattern's first and last bytes for the scanner: one branch per regex "
        "node kind"
    ),
    "policyd/guardrails/_shape.py:shape_of": (
        "classifies a pattern's first and last bytes for the scanner: one branch per regex "
        "node kind"
    ),
    "policyd/guardrails/_validators.py:_card_windows": (
        "a validator following its standard's rules one by one (checksum, number plan), each "
        "rule a tested branch"
    ),
    "policyd/guardrails/_validators.py:phone_international_spans": (
        "a validator following its standard's rules one by one (checksum, number plan), each "
        "rule a tested branch"
    ),
    "policyd/guardrails/_validators.py:phone_nanp_spans": (
        "a validator following its standard's rules one by one (checksum, number plan), each "
        "rule a tested branch"
    ),
    "policyd/guardrails/injection.py:injection_check": (
        "the injection detector's signals in order (trigger, role play, override, encoding), "
        "one branch each, each with a corpus test"
    ),
    "policyd/guardrails/injection.py:trigger_of": (
        "the injection detector's signals in order (trigger, role play, override, encoding), "
        "one branch each, each with a corpus test"
    ),
    "policyd/guardrails/plugins.py:load_plugin": (
        "loads a user's plugin: one clear error per way it can be wrong (missing, not "
        "callable, wrong signature, raises)"
    ),
    "policyd/guardrails/plugins.py:to_verdict": (
        "accepts each documented return form of a plugin, one branch per form"
    ),
    "policyd/guardrails/stream.py:StreamScanner.__init__": (
        "compile time of a stream scanner: one branch per detector kind"
    ),
    "policyd/guardrails/stream.py:StreamScanner._scan_window": (
        "a scanner's state machine, one branch per state: its linearity "
        "(tests/guardrails/test_guardrails_linear.py counts bytes searched) is easier to hold"
        " in one function"
    ),
    "policyd/guardrails/structured.py:_walk_patterns": (
        "walks a JSON Schema's pattern keywords (pattern, patternProperties, nested schemas),"
        " one branch per keyword"
    ),
    "policyd/request.py:_check_message": (
        "request preparation, the hottest code of decide(): generated per policy and inlined "
        "on purpose (#17); tests/engine/test_request_prepare.py compares it with the previous"
        " preparation on generated requests"
    ),
    "policyd/request.py:_generate": (
        "request preparation, the hottest code of decide(): generated per policy and inlined "
        "on purpose (#17); tests/engine/test_request_prepare.py compares it with the previous"
        " preparation on generated requests"
    ),
    "policyd/request.py:_walk": (
        "request preparation, the hottest code of decide(): generated per policy and inlined "
        "on purpose (#17); tests/engine/test_request_prepare.py compares it with the previous"
        " preparation on generated requests"
    ),
    "policyd/stages/base.py:finish": (
        "one conditional per field a blocked decision leaves empty; a single "
        "build_decision call keeps the positional field order in one place"
    ),
    "policyd/stages/budget_reserve.py:price": (
        "one branch per reservation mode (worst case, cap, learned estimate with its fallbacks)"
    ),
    "policyd/stages/budget_settle.py:SettleMixin._actual": (
        "the precedence of what a call cost: reported cost, else tokens at the model's price,"
        " else the reservation"
    ),
    "policyd/stages/budgets.py:BudgetsStage._judge": (
        "one branch per on_exceed action and line state (fits, never fits, used up, in flight)"
    ),
    "policyd/stages/guardrails.py:InputGuardrailsStage._check": (
        "one branch per input guardrail verdict (pass, redact, block, warn, check error)"
    ),
    "policyd/stages/guardrails.py:build_text_check": (
        "compile time: one branch per text check kind"
    ),
    "policyd/stages/output.py:OutputGuardrails.check": (
        "one branch per output guardrail verdict (pass, redact, block, retry, check error)"
    ),
    "policyd/stages/output_stream.py:GuardStream._release": (
        "the stream release rule: hold back exactly what a detector can still match, release "
        "the rest (test_guardrails_stream_exact.py holds stream == check_output)"
    ),
    "policyd/stages/routing.py:RoutingStage.route": (
        "a tier's target: context window filter, cooldowns, weighted or sticky pick, "
        "fallbacks (routing mutation score 99.6%)"
    ),
    "policyd/stages/routing.py:_compile_tiers": (
        "compile time: nested fallbacks resolved and checked tier by tier"
    ),
    "policyd/stores/memory.py:MemoryStore.reserve": (
        "all-or-nothing reservation over every line under one lock; the same result shape as "
        "the Redis script (a hypothesis test compares both)"
    ),
}


@dataclass(frozen=True)
class Finding:
    where: str  # module:qualified name
    line: int
    rank: str
    complexity: int
    lines: int

    @property
    def over(self) -> bool:
        return self.rank >= "C" or self.lines > MAX_LINES


def findings(paths: list[Path]) -> list[Finding]:
    out: dict[str, Finding] = {}
    for path in paths:
        module = path.relative_to(REPO).as_posix()
        for block in cc_visit(path.read_text(encoding="utf-8")):
            for func in [block, *getattr(block, "methods", [])]:
                if hasattr(func, "methods") and not hasattr(func, "is_method"):
                    continue  # a class: its methods are listed on their own
                where = f"{module}:{func.fullname}"
                out[where] = Finding(
                    where,
                    func.lineno,
                    cc_rank(func.complexity),
                    func.complexity,
                    func.endline - func.lineno + 1,
                )
    return sorted(out.values(), key=lambda f: f.where)


def files(scope_all: bool) -> list[Path]:
    if scope_all:
        return sorted((REPO / "policyd").rglob("*.py"))
    out: list[Path] = []
    for entry in DECISION_PATH:
        path = REPO / entry
        if path.is_dir():
            out += sorted(path.glob("*.py"))
        elif path.exists():
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="every module, not the path only")
    args = parser.parse_args(argv)
    found = findings(files(args.all))
    over = [f for f in found if f.over]
    print(f"{'function':<64} {'rank':>6} {'lines':>6}  why")
    unexplained = 0
    for f in over:
        why = EXPLAINED.get(f.where)
        if why is None and not args.all:
            unexplained += 1
        print(f"{f.where:<64} {f.rank}({f.complexity:>2}) {f.lines:>6}  {why or 'UNEXPLAINED'}")
    known = {f.where for f in over}
    stale = sorted(k for k in EXPLAINED if k not in known)
    for where in stale:
        print(f"{where}: listed as explained but no longer over a limit (or gone): remove it")
    checked = len(found)
    print(
        f"\n{checked} functions, {len(over)} over {MAX_LINES} lines or rank C+, "
        f"{unexplained} unexplained"
    )
    return 1 if (unexplained or stale) and not args.all else 0


if __name__ == "__main__":
    sys.exit(main())
