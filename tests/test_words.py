""" "Did you mean" hints and name listings (``policyd.words``): the same hint difflib gives,
found faster; a bounded amount of hint work per bundle; listings of a bundle's own names
that stay short however many names it has."""

from __future__ import annotations

import difflib
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd import words
from policyd.bundle import load_bundle
from policyd.words import LISTED, closest, hint_budget, listing, suggest

ROOT = Path(__file__).resolve().parent.parent

_NAMES = st.text(alphabet="abcde-01", min_size=0, max_size=9)


@settings(max_examples=2000)
@given(word=_NAMES, pool=st.lists(_NAMES, max_size=25, unique=True))
def test_closest_is_difflibs_answer(word: str, pool: list[str]) -> None:
    expected = difflib.get_close_matches(word, sorted(pool), n=1, cutoff=0.6)
    assert closest(word, sorted(pool)) == (expected[0] if expected else None)


def test_closest_on_many_similar_names() -> None:
    pool = [f"tier-{i:04d}-alpha" for i in range(2_000)]
    for word in ("tier-0000-alpah", "tier-1999-alhpa", "tier-12-alpha", "zzz"):
        expected = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
        assert closest(word, pool) == (expected[0] if expected else None)


def test_suggest_outside_a_budget_is_unbounded() -> None:
    names = [f"name{i}" for i in range(100)]
    assert all(suggest("nmae7", names) for _ in range(50))


def test_a_spent_budget_leaves_hints_out_and_reads_no_more_candidates() -> None:
    read = 0

    def candidates() -> object:
        nonlocal read
        for i in range(100):
            read += 1
            yield f"name{i}"

    with hint_budget(250):
        given_hints = [suggest("nmae7", candidates()) for _ in range(5)]
    assert given_hints[:2] == ["did you mean 'name7'?"] * 2
    assert given_hints[2:] == [None, None, None]  # 200 compared, 100 more would pass 250
    assert read == 300  # the third call counted its 100 and stopped; the rest read none
    assert suggest("nmae7", [f"name{i}" for i in range(100)])  # the block is over


@pytest.mark.parametrize("count", [0, 1, LISTED, LISTED + 1, 5_000])
def test_listing_stays_short(count: int) -> None:
    names = [f"n{i}" for i in range(count)]
    text = listing(names, "none")
    if count == 0:
        assert text == "none"
    elif count <= LISTED:
        assert text == ", ".join(names)
    else:
        assert text == ", ".join(names[:LISTED]) + f" and {count - LISTED:,} more"


def test_a_bundle_of_thousands_of_unknown_names_checks_with_bounded_hints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(words, "HINT_COMPARISONS", 50_000)
    n = 1_000
    tiers = "\n".join(
        f"  tier-{i:04d}-alpha:\n    targets: [{{model: gpt-4o-mini}}]" for i in range(n)
    )
    rules = "\n".join(
        f"    - {{name: r{i}, when: 'true', tier: tier-{i:04d}-alpah}}" for i in range(n)
    )
    text = (
        "apiVersion: policyd/v1\nkind: Policy\nmetadata: {name: p}\n"
        f"tiers:\n{tiers}\nrouting:\n  default: tier-0000-alpha\n  rules:\n{rules}\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "models.yaml").write_text((ROOT / "policies" / "models.yaml").read_text())
        (Path(folder) / "p.yaml").write_text(text)
        bundle = load_bundle(folder)
    unknown = [d for d in bundle.diagnostics if d.code == "PD202"]
    assert len(unknown) == n
    hinted = [d for d in unknown if d.hint and d.hint.startswith("did you mean")]
    assert [d.hint for d in hinted] == [f"did you mean 'tier-{i:04d}-alpha'?" for i in range(50)]
    rest = {d.hint for d in unknown[50:]}  # the budget is spent: a short listing instead
    assert rest == {"tiers: " + listing(sorted(f"tier-{i:04d}-alpha" for i in range(n)))}
    assert all(len(d.hint or "") < 600 for d in unknown)
