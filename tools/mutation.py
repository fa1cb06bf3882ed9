"""Mutation testing of the decision-critical modules with mutmut, one module at a time.

    pip install -e '.[mutation]'
    python tools/mutation.py                      # every module below (CPU-heavy: ~1 h)
    python tools/mutation.py ledger routing       # some of them
    python tools/mutation.py ledger --survivors   # and print each surviving mutant's diff

Each module is mutated in its own scratch copy of the repository (``.mutation/<name>``,
git-ignored) against a fast subset of the suite that exercises it, then a table is printed:
module, mutants, killed, survived, % killed, the 90% target and whether it is met.
"killed" counts mutants a test failed on or that timed out; "survived" also counts the
mutants no selected test reaches; "equivalent" mutants (listed below with why: they
behave exactly like the original) are left out of the percentage. The scratch copy
stays for ``mutmut show <mutant>`` (run inside ``.mutation/<name>``). Exit status 1 when
a module misses the target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.90


@dataclass(frozen=True)
class Equivalent:
    """Mutants that behave exactly like the original: the line text before and after."""

    why: str
    before: str
    after: str
    where: str = ""  # part of the mutant's name (its function) when the line recurs


@dataclass(frozen=True)
class Module:
    """A module to mutate, the tests that must kill its mutants, its equivalent mutants."""

    path: str
    tests: tuple[str, ...]
    equivalent: tuple[Equivalent, ...] = ()


_ZIP3 = "zip(spent.as_tuple(), self.as_tuple(), "
LEDGER_EQUIVALENT = (
    *(
        Equivalent("both tuples always hold 3 items", _ZIP3 + "strict=True)", _ZIP3 + after)
        for after in ("strict=None)", "strict=False)", ")")
    ),
    Equivalent(
        "one line cannot repeat itself: the set test is the check, `> 1` a shortcut",
        "if len(lines) > 1 and",
        "if len(lines) >= 1 and",
    ),
)


_DIV = "return check_int(-quotient if (a < 0) != (b < 0) else quotient)"
_FIND = 'if kind != "string" and (key is True or key is False or key in (0, 1)):'
RUNTIME_EQUIVALENT = (
    Equivalent(
        "items[len] raises IndexError, reported with the same text",
        "if 0 <= index < len(items):",
        "if 0 <= index <= len(items):",
    ),
    *(
        Equivalent("0 // b is 0 whatever its sign; b == 0 raised before", _DIV, after)
        for after in ("(a <= 0) !=", "(a < 1) !=", "!= (b <= 0)", "!= (b < 1)")
    ),
    *(
        Equivalent("-0 == 0", "return -rest if a < 0 else rest", after)
        for after in ("if a <= 0 else", "if a < 1 else")
    ),
    *(
        Equivalent("the result is infinite: its magnitude does not change", "copysign(1.0, b)", a)
        for a in ("copysign(2.0, b)", "copysign(math.inf, a) / math.copysign")
    ),
    *(
        Equivalent("a guard for the exact bool/int scan, which finds the same keys", _FIND, a)
        for a in (
            'if kind != "string" or (',
            'if kind != "XXstringXX" and',
            'if kind != "STRING" and',
            "(key is True and key is False or",
            "(key is False or key is False or",
            "(key is True or key is True or",
        )
    ),
)

_ZIPW = "for info, weight in zip(usable, weights, "
_NOW = "now = state.now.timestamp() if self.cooldown else 0.0"
ROUTING_EQUIVALENT = (
    Equivalent("codec names are case-insensitive", '"utf-8"', '"UTF-8"'),
    Equivalent("big-endian is the default", 'from_bytes(digest[:8], "big")', "digest[:8], )"),
    Equivalent("max_tokens 0 adds 0 either way", "max_tokens > 0 else 0", "max_tokens >= 0 else 0"),
    Equivalent(
        "with context_window: ignore, 1 token fits every model (windows are positive)",
        "needed = self._needed(state) if self.skip_small else 0",
        "if self.skip_small else 1",
    ),
    *(
        Equivalent("the time is read only when there are cooldowns", _NOW, after)
        for after in ("if (self.cooldown) or True else", "if self.cooldown else 1.0")
    ),
    # route(): taking the slow path when the fast one applies gives the same decision.
    *(
        Equivalent("the slow path computes the same chain, only slower", before, after, "ǁroute_")
        for before, after in (
            ("if self.skip_small else 0", "if (self.skip_small) or True else 0"),
            ("if self.skip_small else 0", "if self.skip_small else 1"),
            ("self.cooldown is not None and self", "self.cooldown is not None or self"),
            ("if needed <= tier.min_window", "if needed < tier.min_window"),
        )
    ),
    Equivalent("None is as false as False", "cooldowns=False", "cooldowns=None"),
    Equivalent(
        "the seen-set only guards against tier cycles, which validation rejects",
        "out.extend(expand(entry, seen | {entry}))",
        "out.extend(expand(entry, seen & {entry}))",
    ),
    *(
        Equivalent("weights are aligned with the targets", _ZIPW + "strict=True)", _ZIPW + a)
        for a in ("strict=None)", "strict=False)", ")")
    ),
    Equivalent(
        "a point lands exactly on a bucket edge with probability 2**-64",
        "if target < cumulative:",
        "if target <= cumulative:",
    ),
    *(
        Equivalent("unreachable: point * total < total", "return usable[-1], how", a)
        for a in ("return usable[+1], how", "return usable[-2], how")
    ),
    Equivalent("RoutingStage.models is never read (dead)", "self.models = env.models", "= None"),
)

_BYTE = "return data[i] if 0 <= i < len(data) else -1"
_STEP = "if not 3 <= nxt_end - nxt_start <= 6 or len(digits) + nxt_end - nxt_start > 19:"
_TAKE = "if covered > best[i] or (covered == best[i] and take[i] < 0):"
VALIDATORS_EQUIVALENT = (
    Equivalent("codec names are case-insensitive", '"latin-1"', '"LATIN-1"'),
    *(
        Equivalent("no byte compared with _byte() is 1 or negative: -1 was no byte", _BYTE, a)
        for a in ("else +1", "else -2")
    ),
    Equivalent(
        "-total is a multiple of 10 exactly when total is",
        "total += _LUHN_DOUBLED[d] if i & 1 else d",
        "total -= _LUHN_DOUBLED[d] if i & 1 else d",
    ),
    Equivalent(
        "two groups from a group of 4 hold at most 10 digits: never a card",
        "if size != 4 or i + 1 >= len(groups):",
        "if size != 4 or i + 2 >= len(groups):",
    ),
    Equivalent("card_number_ok() rejects 20 digits", "if 13 <= size <= 19:", "13 <= size <= 20"),
    *(
        Equivalent("the bound only ends the walk early: no card has over 19 digits", _STEP, a)
        for a in ("start > 20:", "len(digits) - nxt_end")
    ),
    # card_spans(): covers are compared with each other, so a constant added to each is moot
    Equivalent("only differences of the prefix sums are read", "= [0]", "= [1]", "card_spans"),
    Equivalent("adding 1 to every cover keeps their order", "[0] * (n + 1)", "[1] * (n + 1)"),
    Equivalent("the extra slot is never read", "[0] * (n + 1)", "[0] * (n + 2)"),
    Equivalent("any negative take means no card", "take = [-1] * n", "take = [-2] * n"),
    Equivalent(
        "i = -1 reads the last group as the first: its windows cover less than best[0]",
        "for i in range(n - 1, -1, -1):",
        "for i in range(n - 1, -2, -1):",
    ),
    *(
        Equivalent("take[i] is 0 only for a one-group card at 0, its only window", _TAKE, a)
        for a in ("take[i] <= 0)", "take[i] < 1)")
    ),
    Equivalent(
        "an IBAN with single spaces spans under 2 * length: the window only bounds the work",
        "window = data[start : min(end, start + 2 * length)]",
        "start + 3 * length",
    ),
    Equivalent(
        "a date prefix is the number's first 3 groups, inside its first 10 digits",
        "_DATE_PREFIX.match(data, gs, groups[j][1])",
        "_DATE_PREFIX.match(data, gs, )",
    ),
    Equivalent(
        "a start past the candidate's end gets an empty window in _iban_end",
        "_IBAN_START.finditer(data, start, end)",
        "_IBAN_START.finditer(data, start, )",
    ),
    Equivalent("None is as false as 0", "best = 0  # end of", "best = None  # end of"),
    Equivalent("the candidate pattern holds one @", "text.rpartition(", "text.partition("),
    Equivalent(
        "they differ for len % 4 of 1 (never base64) and 3 (extra padding is ignored)",
        '+ b"=" * (-len(part) % 4)',
        '+ b"=" * (+len(part) % 4)',
    ),
    Equivalent("a phone candidate holds no X", 'text[i - 1] in " .-"', 'in "XX .-XX"'),
    *(
        Equivalent("digits hold no X", a, a.replace('"01"', '"XX01XX"'))
        for a in ('if digits[0] in "01" or', 'or digits[3] in "01":')
    ),
)

_CLOSE = "close = difflib.get_close_matches(name, names, n=1)"
INJECTION_EQUIVALENT = (
    *(
        Equivalent("only the closest match, close[0], is read", _CLOSE, a)
        for a in ("names, n=2)", "names, )")
    ),
    Equivalent(
        "there is one ruleset version: a join of one name has no separator",
        "hint=f\"use one of {', '.join(sorted(RULESETS))}\"",
        "'XX, XX'.join(sorted(RULESETS))",
    ),
    Equivalent(
        "built-in patterns always compile: `what` only names a pattern in a compile error",
        'what=f"injection {name}"',
        "what=None",
    ),
)

_ZIPV = "zip(detector.patterns, detector.validators(), "
_CLOSE_PII = "difflib.get_close_matches(str(kind), known, n=1)"
PII_EQUIVALENT = (
    Equivalent(
        "`what` names a pattern only in the error for a bad one; the shipped patterns compile",
        'what=f"pii {detector.kind}"',
        "what=None",
    ),
    *(
        Equivalent("a detector has one validator per pattern", _ZIPV + "strict=True)", _ZIPV + a)
        for a in ("strict=None)", "strict=False)", ")")
    ),
    *(
        Equivalent("only the closest match is used; n bounds the rest", _CLOSE_PII, after)
        for after in ("known, )", "known, n=2)")
    ),
)

_EXACT = 'exact_item = {"string": str, "int": int, "double": float, "bool": bool}.get('
_PASS = "(cls is str and (item.isascii() or not _bad_text(item))) or cls in _PLAIN:"
_INT = "if cls is int and _INT64[0] <= item <= _INT64[1]:"
REQUEST_EQUIVALENT = (
    *(
        Equivalent(
            "exact_item only skips the check of items it would accept; a miss checks them",
            before,
            "",
            "x__type_checker",
        )
        for before in (_EXACT, "text[5:-1].strip(), _Never")
    ),
    Equivalent("codec names are case-insensitive", '"utf-8"', '"UTF-8"'),
    Equivalent(
        "a refusal is read from .message, never str()", "super().__init__(message)", "(None)"
    ),
    Equivalent(
        "the isinstance tests decide; cls is only a shortcut", "cls = value.__class__", "= None"
    ),
    # _walk: a shortcut that passes fewer values on; _leaf or the isinstance test that
    # then sees them decides each one the same way
    *(
        Equivalent("the shortcut skips fewer values; the full check decides alike", a, b, "_walk")
        for a, b in (
            ("cls = item.__class__", "cls = None"),
            (_PASS, "(item.isascii() and not _bad_text(item)))"),
            (_PASS, ")) and cls in _PLAIN:"),
            (_INT, "_INT64[0] < item"),
            (_INT, "item < _INT64[1]"),
            (_INT, "_INT64[1] <= item"),
            ("if cls is dict or cls is list or", "if cls is dict and cls is list or"),
        )
    ),
    # _emit: with the inline class test never passing, the general checker decides each
    # value exactly as it does for any other, only slower
    *(
        Equivalent("the general checker accepts what the class test skips", a, "(None)", "_emit")
        for a in ("src.name(item)", "src.name(cls)")
    ),
)

MODULES: dict[str, Module] = {
    "ledger": Module(
        "policyd/budgets/ledger.py",
        (
            "tests/budgets/test_ledger_edges.py",
            "tests/budgets/test_store_semantics.py",
            "tests/engine/test_budgets_stage.py",
        ),
        LEDGER_EQUIVALENT,
    ),
    "routing": Module(
        "policyd/stages/routing.py",
        ("tests/engine/test_routing.py", "tests/engine/test_routing_edges.py"),
        ROUTING_EQUIVALENT,
    ),
    "cel-runtime": Module(
        "policyd/cel/runtime.py",
        (
            "tests/cel/test_cel_semantics.py",
            "tests/cel/test_cel_runtime_edges.py",
            "tests/cel/test_cel_compile.py",
        ),
        RUNTIME_EQUIVALENT,
    ),
    "request": Module(
        "policyd/request.py",
        (
            "tests/engine/test_engine_api.py",
            "tests/engine/test_request_edges.py",
            "tests/engine/test_request_scan.py",
        ),
        REQUEST_EQUIVALENT,
    ),
    "pii": Module(
        "policyd/guardrails/pii.py",
        ("tests/guardrails/test_guardrails_pii.py", "tests/guardrails/test_guardrails_redact.py"),
        PII_EQUIVALENT,
    ),
    "validators": Module(
        "policyd/guardrails/_validators.py",
        (
            "tests/guardrails/test_guardrails_validators.py",
            "tests/guardrails/test_guardrails_validator_edges.py",
            "tests/guardrails/test_guardrails_pii.py",
            "tests/guardrails/test_guardrails_secrets.py",
        ),
        VALIDATORS_EQUIVALENT,
    ),
    "injection": Module(
        "policyd/guardrails/injection.py",
        (
            "tests/guardrails/test_guardrails_patterns.py",
            "tests/guardrails/test_guardrails_injection.py",
        ),
        INJECTION_EQUIVALENT,
    ),
}

# Copied next to policyd/ and tests/: data the tests read relative to the repository.
ALSO_COPY = ("policies", "examples", "schemas")


@dataclass(frozen=True)
class Score:
    module: str
    mutants: int
    equivalent: int
    killed: int
    survivors: tuple[tuple[str, str], ...]  # (name, diff)

    @property
    def survived(self) -> int:
        return len(self.survivors)

    @property
    def rate(self) -> float:
        counted = self.mutants - self.equivalent
        return self.killed / counted if counted else 1.0


# mutmut's exit codes per mutant (mutmut/stats.py): which ones a test caught.
KILLED = {1, 3, 36, 24, -24, 152, 255, 37}  # failed, pytest error, timeouts, type check
NOT_RUN = {None, 34, 2}  # not checked, skipped, interrupted


def prepare(name: str, module: Module, workdir: Path) -> Path:
    """A fresh scratch repository for ``module`` with mutmut's configuration in it."""
    scratch = workdir / name
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache")
    for folder in ("policyd", "tests", *ALSO_COPY):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, scratch / folder, ignore=ignore)
    shared = REPO.parent / "shared"  # the tests find it at <repo>/../shared
    if shared.is_dir():
        (scratch / "shared").symlink_to(shared)
    selection = ", ".join(json.dumps(t) for t in module.tests if (REPO / t).exists())
    config = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    config += f"""
[tool.mutmut]
source_paths = ["policyd"]
only_mutate = [{json.dumps(module.path)}]
pytest_add_cli_args_test_selection = [{selection}]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]
also_copy = {json.dumps(list(ALSO_COPY))}
use_git_change_detection = false
"""
    (scratch / "pyproject.toml").write_text(config, encoding="utf-8")
    return scratch


def run(name: str, module: Module, workdir: Path, max_children: int) -> Score:
    scratch = prepare(name, module, workdir)
    # mutmut puts <scratch>/mutants first on sys.path itself; a PYTHONPATH naming it
    # before it exists would be cached by the import system as "no such directory".
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    log = scratch / "mutmut.log"
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run(command, cwd=scratch, env=env, stdout=out, stderr=subprocess.STDOUT)
    meta = scratch / "mutants" / f"{module.path}.meta"
    if done.returncode != 0 or not meta.exists():
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"mutmut failed on {module.path} (exit {done.returncode}):\n{tail}")
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    counted = {k: v for k, v in codes.items() if v not in NOT_RUN}
    survivors = []
    equivalent = 0
    for name in sorted(k for k, v in counted.items() if v not in KILLED):
        diff = show(scratch, name, env)
        if is_equivalent(name, diff, module.equivalent):
            equivalent += 1
        else:
            survivors.append((name, diff))
    killed = len(counted) - equivalent - len(survivors)
    return Score(module.path, len(counted), equivalent, killed, tuple(survivors))


def show(scratch: Path, mutant: str, env: dict[str, str]) -> str:
    """The mutant's diff against the original, as ``mutmut show`` prints it."""
    shown = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=scratch,
                           env=env, capture_output=True, text=True)  # fmt: skip
    return shown.stdout


def is_equivalent(name: str, diff: str, known: tuple[Equivalent, ...]) -> bool:
    changed = [ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    before = " ".join(ln[1:].strip() for ln in changed if ln.startswith("-"))
    after = " ".join(ln[1:].strip() for ln in changed if ln.startswith("+"))
    return any(e.where in name and e.before in before and e.after in after for e in known)


def table(scores: list[Score]) -> str:
    rows = [("module", "mutants", "equivalent", "killed", "survived", "% killed", "target",
             "met")]  # fmt: skip
    for s in scores:
        met = "met" if s.rate >= TARGET else "not met"
        rows.append(
            (s.module, str(s.mutants), str(s.equivalent), str(s.killed), str(s.survived),
             f"{s.rate:.1%}", f"{TARGET:.0%}", met)
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", choices=[[], *MODULES], metavar="module",
                        help=f"some of: {', '.join(MODULES)} (default: all)")  # fmt: skip
    parser.add_argument("--max-children", type=int, default=1,
                        help="parallel mutant runs (default 1: the machine is shared)")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=REPO / ".mutation")
    parser.add_argument("--survivors", action="store_true", help="print surviving mutants")
    args = parser.parse_args(argv)
    scores = []
    for name in args.modules or list(MODULES):
        print(f"mutating {MODULES[name].path} ...", flush=True)
        score = run(name, MODULES[name], args.workdir, args.max_children)
        scores.append(score)
        print(table([score]).splitlines()[-1], flush=True)
        if args.survivors:
            for mutant, diff in score.survivors:
                print(f"survived: {mutant}\n{diff}")
    print()
    print(table(scores))
    return 0 if all(s.rate >= TARGET for s in scores) else 1


if __name__ == "__main__":
    raise SystemExit(main())
