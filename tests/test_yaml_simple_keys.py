"""The pure YAML scanner's possible simple keys (policyd.yamlevents.PureEvents): PyYAML's
behaviour exactly, at a step per key instead of a look at every key per token.

PyYAML checks every saved key (one per open flow collection, up to 1,024 characters back on
the line) before each token, so ``x: [[[[...]]]]`` nested 4,000 deep (deeper than libyaml
reads, so read pure) took 6.4 s. Counted, not timed: how often a key's position is read.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
import yaml.scanner
from hypothesis import given, settings
from hypothesis import strategies as st
from test_yaml_parsers import NOISE, yaml_texts
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.scanner import Scanner

from policyd.loader import load_text
from policyd.yamlevents import PureEvents


class PyYaml(Reader, Scanner, Parser):
    """PyYAML's own pure parser, untouched."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)


def _events(source: Any) -> list[Any]:
    """Every event (kind, marks, values), then the error that ended the stream, if any."""
    out: list[Any] = []
    try:
        while True:
            event = source.get_event()
            out.append(
                (
                    type(event).__name__,
                    event.start_mark.index,
                    event.end_mark.index,
                    getattr(event, "anchor", None),
                    getattr(event, "tag", None),
                    getattr(event, "value", None),
                    getattr(event, "implicit", None),
                )
            )
            if isinstance(event, yaml.StreamEndEvent):
                return out
    except yaml.YAMLError as exc:
        out.append((type(exc).__name__, str(exc)))
        return out


def assert_same_events(text: str) -> None:
    assert _events(PureEvents(text)) == _events(PyYaml(text))


# where simple keys go stale: a new line, 1,024 characters, a required key never completed
EDGES = [
    "x: " + "[" * 40 + "]" * 40 + "\n",
    "x: " + "[" * 1100 + "]" * 1100 + "\n",
    "x: [" + "a" * 1020 + ": b, " + "c" * 1030 + ": d]\n",
    "x: {" + "k" * 1025 + ": v}\n",
    "k" * 1030 + ": v\n",
    "a:\n  b\n  c: d\n",
    "[a, [b, {c: d, e\n: f}], [g\n, h: i]]\n",
    "x: [[a: b, [c, d: e]], {f: [g: h]}]\n",
    "- [a, b\n- c\n",
    "? a\n: b\nc: &x [d, *x\n",
    "x: [" + ", ".join("[" * 5 + "a" + "]" * 5 for _ in range(300)) + "]\n",
]


@pytest.mark.parametrize("text", EDGES, ids=range(len(EDGES)))
def test_edges_read_as_pyyaml_reads_them(text: str) -> None:
    assert_same_events(text)


@settings(max_examples=300, deadline=None)
@given(yaml_texts())
def test_generated_yaml_reads_as_pyyaml_reads_it(text: str) -> None:
    assert_same_events(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(NOISE), max_size=80))
def test_yaml_like_noise_reads_as_pyyaml_reads_it(text: str) -> None:
    assert_same_events(text)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(["[", "]", "{", "}", "a", ": ", ", ", "\n", " " * 300]), max_size=60)
)
def test_long_flow_lines_read_as_pyyaml_reads_them(parts: list[str]) -> None:
    assert_same_events("x: " + "".join(parts) + "\n")


class CountingKey(yaml.scanner.SimpleKey):  # type: ignore[misc]
    """A saved simple key that counts how often its position is read."""

    reads = 0

    def __getattribute__(self, name: str) -> Any:
        if name in ("line", "index", "token_number"):
            CountingKey.reads += 1
        return object.__getattribute__(self, name)


@pytest.mark.parametrize("depth", [1000, 4000])
def test_deep_flow_nesting_reads_each_key_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch, depth: int
) -> None:
    monkeypatch.setenv("POLICYD_PURE_YAML", "1")
    monkeypatch.setattr(yaml.scanner, "SimpleKey", CountingKey)
    CountingKey.reads = 0
    text = "x: " + "[" * depth + "]" * depth + "\n"
    result = load_text(text, file="deep.yaml")
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [("PD006", 1, 67)]
    assert CountingKey.reads <= 20 * len(text)  # PyYAML's own scan: ~1,000 per character
