"""Fallback chains of tiers that share fallbacks, or chain for a long way: compiled once per
tier, in the order of the full expansion, without recursion.

Each tier's chain used to be expanded again wherever it was reached: tiers whose two
fallbacks lead to the same next tier doubled the work per level (16 levels took 0.87 s to
compile, 24 would take minutes), and a chain of 1,000 tiers each falling back to the next
was a RecursionError, in ``policyd check`` (the cycle check) as in compiling. Counted, not
timed: how often models are compared or hashed while compiling.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from engine_bundles import CATALOG, policy, small_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyd import Engine
from policyd.bundle import load_bundle
from policyd.prices import ModelInfo
from policyd.stages.routing import RoutingStage

MODELS = ["small", "medium", "large", "huge"]


def _tiers(engine: Engine) -> dict[str, Any]:
    step = next(s for s in engine.compiled.policies["p"].steps if s.name == "routing")
    assert isinstance(step.stage, RoutingStage)
    return step.stage.tiers


def _engine(tmp: Path, tiers: str, default: str = "t0") -> Engine:
    (tmp / "models.yaml").write_text(textwrap.dedent(CATALOG))
    (tmp / "policy.yaml").write_text(policy(f"routing: {{default: {default}}}\ntiers:\n{tiers}"))
    return Engine.from_path(tmp)


def _expand(
    tiers: dict[str, tuple[list[str], list[str]]], name: str, seen: frozenset[str]
) -> list[str]:
    """The full expansion, as it was written: targets, then each fallback's expansion."""
    out = list(tiers[name][0])
    for entry in tiers[name][1]:
        if entry in tiers:
            if entry not in seen:
                out.extend(_expand(tiers, entry, seen | {entry}))
        else:
            out.append(entry)
    return out


@st.composite
def tier_graphs(draw: st.DrawFn) -> dict[str, tuple[list[str], list[str]]]:
    """Tiers t0..tn, each with targets and fallbacks to later tiers and to models."""
    n = draw(st.integers(1, 7))
    graph = {}
    for k in range(n):
        later = [f"t{j}" for j in range(k + 1, n)]
        targets = draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=2, unique=True))
        fallback = draw(st.lists(st.sampled_from(later + MODELS), max_size=4, unique=True))
        graph[f"t{k}"] = (targets, fallback)
    return graph


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(graph=tier_graphs())
def test_each_chain_is_the_full_expansion_each_model_once(
    tmp_path: Path, graph: dict[str, tuple[list[str], list[str]]]
) -> None:
    text = "".join(
        f"  {name}: {{targets: [{', '.join(f'{{model: {m}}}' for m in targets)}], "
        f"fallback: [{', '.join(fallback)}]}}\n"
        for name, (targets, fallback) in graph.items()
    )
    compiled = _tiers(_engine(tmp_path, text))
    for name, (_, fallback) in graph.items():
        chain: list[str] = []
        for entry in fallback:
            chain += _expand(graph, entry, frozenset({name, entry})) if entry in graph else [entry]
        assert [m.id for m in compiled[name].chain] == list(dict.fromkeys(chain))


class _Counted:
    """Counts ModelInfo comparisons and hashes (what merging chains costs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        eq, hash_ = ModelInfo.__eq__, ModelInfo.__hash__

        def counted_eq(a: ModelInfo, b: object) -> bool:
            self.n += 1
            return eq(a, b)

        def counted_hash(a: ModelInfo) -> int:
            self.n += 1
            return hash_(a)

        monkeypatch.setattr(ModelInfo, "__eq__", counted_eq)
        monkeypatch.setattr(ModelInfo, "__hash__", counted_hash)


def test_tiers_sharing_fallbacks_are_expanded_once_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    levels = 18  # t_k falls back to a_k and b_k, which both fall back to t_k+1
    text = (
        "".join(
            f"  t{k}: {{targets: [{{model: small}}], fallback: [a{k}, b{k}]}}\n"
            f"  a{k}: {{targets: [{{model: small}}], fallback: [t{k + 1}]}}\n"
            f"  b{k}: {{targets: [{{model: medium}}], fallback: [t{k + 1}, huge]}}\n"
            for k in range(levels)
        )
        + f"  t{levels}: {{targets: [{{model: large}}]}}\n"
    )
    counted = _Counted(monkeypatch)
    engine = _engine(tmp_path, text)
    tiers = 3 * levels + 1
    assert counted.n <= 40 * tiers  # the full expansion: over 2 ** levels
    chain = [m.id for m in _tiers(engine)["t0"].chain]
    assert chain == ["small", "large", "medium", "huge"]
    d = engine.decide(small_request())
    assert d.model == "small" and d.fallbacks == ("large", "medium", "huge")


def test_a_long_fallback_chain_is_checked_and_compiled(tmp_path: Path) -> None:
    length = 1500  # tiers: deeper than Python's recursion limit
    text = (
        "".join(
            f"  t{k}: {{targets: [{{model: small}}], fallback: [t{k + 1}]}}\n"
            for k in range(length)
        )
        + f"  t{length}: {{targets: [{{model: large}}]}}\n"
    )
    engine = _engine(tmp_path, text)
    assert [m.id for m in _tiers(engine)["t0"].chain] == ["small", "large"]
    assert engine.decide(small_request()).fallbacks == ("large",)
    # a cycle at the end of the chain is one diagnostic, naming the whole loop
    last = f"  t{length}: {{targets: [{{model: large}}]"
    looped = text.replace(last + "}\n", last + ", fallback: [t0]}\n")
    (tmp_path / "policy.yaml").write_text(policy(f"routing: {{default: t0}}\ntiers:\n{looped}"))
    bundle = load_bundle(tmp_path)
    [cycle] = [d for d in bundle.diagnostics if d.code == "PD205"]
    steps = " -> ".join(f"t{k}" for k in range(length + 1))
    assert cycle.message == f"fallback cycle between tiers: {steps} -> t0"


def _cycles(graph: dict[str, list[str]]) -> list[str]:
    """The cycle reports, as the recursive check wrote them."""
    state: dict[str, int] = {}
    out: list[str] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for entry in graph[name]:
            if entry not in graph:
                continue
            if state.get(entry) == 1:
                path = [*trail, name]
                out.append(" -> ".join([*path[path.index(entry) :], entry]))
            elif state.get(entry) is None:
                visit(entry, [*trail, name])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
    return out


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(1, 6).flatmap(
        lambda n: st.lists(
            st.lists(
                st.sampled_from([f"t{j}" for j in range(n)] + ["small"]), max_size=3, unique=True
            ),
            min_size=n,
            max_size=n,
        )
    )
)
def test_fallback_cycles_are_reported_as_the_recursive_check_did(
    tmp_path: Path, fallbacks: list[list[str]]
) -> None:
    graph = {f"t{k}": entries for k, entries in enumerate(fallbacks)}
    text = "".join(
        f"  {name}: {{targets: [{{model: small}}], fallback: [{', '.join(entries)}]}}\n"
        for name, entries in graph.items()
    )
    (tmp_path / "models.yaml").write_text(textwrap.dedent(CATALOG))
    (tmp_path / "policy.yaml").write_text(policy(f"routing: {{default: t0}}\ntiers:\n{text}"))
    found = [d.message for d in load_bundle(tmp_path).diagnostics if d.code == "PD205"]
    # (diagnostics come sorted by where they are written)
    assert sorted(found) == sorted(f"fallback cycle between tiers: {c}" for c in _cycles(graph))
