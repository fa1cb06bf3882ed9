"""The CEL specification's conformance cases, run through policyd.cel and cel-python.

Prints a pass/fail/skip table for both engines (visible without ``-s``), requires
every applicable case to pass on policyd except those listed in ``KNOWN_FAILURES``
(and each listed one to still fail, so the list cannot go stale), and every skipped
case to carry a stated reason. The same figures are recorded in docs/cel.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from cel_conformance import Case, Tally, load_cases, run_all

# Case ids (``file/section/name``) that policyd.cel is known to get wrong, each with the
# reason on its line. Empty: all 704 applicable cases pass. A regression fails the test
# with the case named; to accept one knowingly, list it here with why.
KNOWN_FAILURES: frozenset[str] = frozenset()
SKIP_REASONS = {
    "protobuf messages",
    "uint (policyd has no unsigned integers)",
    "uint64 values (policyd has no uint)",
    "sub-microsecond times (Python datetime/timedelta hold microseconds)",
}


@pytest.fixture(scope="module")
def cases(shared_dir: Path) -> list[Case]:
    folder = shared_dir / "cel-conformance"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    found = load_cases(folder)
    assert len(found) > 900, "the conformance data should hold ~959 cases"
    return found


def test_conformance(cases: list[Case], capsys: pytest.CaptureFixture[str]) -> None:
    ours, theirs = Tally(), Tally()
    per_file: dict[str, Tally] = {}
    reasons: Counter[str] = Counter()
    failures: list[str] = []
    failed_ids: set[str] = set()
    for case, mine, celpy in run_all(cases):
        file_tally = per_file.setdefault(case.file, Tally())
        for tally, (status, _) in ((ours, mine), (theirs, celpy), (file_tally, mine)):
            if status == "skip":
                tally.skipped += 1
            elif status == "pass":
                tally.passed += 1
            else:
                tally.failed += 1
        if mine[0] == "skip":
            reasons[mine[1]] += 1
        elif mine[0] == "fail":
            failed_ids.add(case.id)
            if case.id not in KNOWN_FAILURES:
                failures.append(f"{case.id}: {case.expr!r}: {mine[1]}")

    lines = ["", "CEL conformance (../shared/cel-conformance)", ""]
    lines.append(f"{'file':<14}{'pass':>6}{'fail':>6}{'skip':>6}")
    for name, t in sorted(per_file.items()):
        lines.append(f"{name:<14}{t.passed:>6}{t.failed:>6}{t.skipped:>6}")
    lines.append("")
    for label, t in (("policyd.cel", ours), ("cel-python", theirs)):
        lines.append(
            f"{label:<12} passed {t.passed}/{t.applicable} applicable "
            f"({t.rate:.1%}), failed {t.failed}, skipped {t.skipped}"
        )
    lines += [f"  skipped: {n} x {reason}" for reason, n in reasons.most_common()]
    lines += [f"  FAIL {f}" for f in failures]
    with capsys.disabled():
        print("\n".join(lines))

    assert set(reasons) <= SKIP_REASONS, f"skips without a known reason: {set(reasons)}"
    assert ours.applicable > 650
    assert not failures, f"{len(failures)} case(s) not in KNOWN_FAILURES fail:\n" + "\n".join(
        failures
    )
    fixed = KNOWN_FAILURES - failed_ids
    assert not fixed, f"listed in KNOWN_FAILURES but passing now, drop them: {sorted(fixed)}"


def test_every_case_is_classified(cases: list[Case]) -> None:
    """No case is silently dropped: each is applicable, or skipped with a reason."""
    for case in cases:
        assert case.expr
        assert case.skip is None or case.skip in SKIP_REASONS, (case.id, case.skip)
