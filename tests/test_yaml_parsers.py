"""libyaml's events against PyYAML's pure parser: the same documents, source maps, diagnostics.

:class:`~policyd.yaml12.FileReader` reads with libyaml (``run_c``) and redoes a file with the
pure parser (``run_pure``) when libyaml raises or builds an event the pure parser would not.
Here every shipped and example file, hand-picked texts where the two parsers disagree, and
generated YAML are read both ways; whenever ``run_c`` does not raise, its result must be the
pure one exactly, and ``run`` (what the loader calls) must always be.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd.loader import load_text
from policyd.sourcemap import MapNode, Node, ScalarNode, SeqNode
from policyd.yaml12 import FileReader
from policyd.yamlevents import EventsDiffer, c_events_may_differ, has_c_parser

REPO = Path(__file__).resolve().parent.parent
FILES = sorted(
    p
    for folder in ("policies", "examples")
    for p in (REPO / folder).rglob("*")
    if p.suffix in (".yaml", ".yml")
)
# A file that is not UTF-8 is refused before any parser runs (tests/test_cli.py checks the
# broken examples' output), so there is nothing for the two parsers to agree on.
NOT_UTF8 = [REPO / "examples" / "broken" / "not-utf8.yaml"]


def _is_utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_the_only_file_not_in_utf8_is_the_broken_example() -> None:
    assert [p for p in FILES if not _is_utf8(p)] == NOT_UTF8


def _data(v: Any) -> Any:
    """Data with types and written text (``raw``), NaN made comparable."""
    if isinstance(v, dict):
        return ("map", [(k, _data(x)) for k, x in v.items()])
    if isinstance(v, list):
        return ("seq", [_data(x) for x in v])
    shown = "nan" if isinstance(v, float) and math.isnan(v) else v
    return (type(v).__name__, shown, getattr(v, "raw", None))


def _node(n: Node) -> Any:
    if isinstance(n, ScalarNode):
        value = _data(n.value) if type(n.value) is not object else "no value"
        return ("scalar", n.start, n.end, n.text_start, value, n.style, n.merge)
    if isinstance(n, SeqNode):
        return ("seq", n.start, n.end, [_node(i) for i in n.items])
    assert isinstance(n, MapNode)
    return ("map", n.start, n.end, [(k, _node(a), _node(b)) for k, (a, b) in n.entries.items()])


def _result(reader: FileReader) -> Any:
    documents = [(i, _data(d), _node(sm._root)) for i, d, sm in reader.documents]
    return reader.nonempty, reader.diagnostics, documents


def _read(text: str, how: str) -> FileReader:
    reader = FileReader("f.yaml", text)
    getattr(reader, how)()
    return reader


def assert_same_both_ways(text: str) -> bool:
    """Assert ``run`` (and ``run_c`` when it reads the text) equals ``run_pure``; True when
    libyaml read the text without falling back."""
    pure = _result(_read(text, "run_pure"))
    assert _result(_read(text, "run")) == pure
    if c_events_may_differ(text):
        return False
    try:
        c = _read(text, "run_c")
    except (yaml.YAMLError, EventsDiffer, UnicodeError):
        return False
    assert _result(c) == pure
    return True


def test_libyaml_is_there() -> None:
    assert has_c_parser() and yaml.__with_libyaml__


@pytest.mark.parametrize(
    "path", [p for p in FILES if p not in NOT_UTF8], ids=lambda p: str(p.relative_to(REPO))
)
def test_every_shipped_and_example_file_reads_the_same(path: Path) -> None:
    text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    read_by_c = assert_same_both_ways(text)
    if path.parent.name != "broken":
        assert read_by_c, "a valid policy file must not need the slow pure parser"


def test_whole_bundle_loads_the_same_both_ways() -> None:
    for path in FILES:
        text = path.read_bytes().decode("utf-8", "replace")
        assert _result(_read(text, "run")) == _result(_read(text, "run_pure"))


# Each text here is one on which libyaml 0.2.5 and the pure parser disagree (or a neighbour).
DISAGREEING = [
    "a: !*x*!\n",  # tag spelling libyaml accepts
    "a: !Ref x\nb: !!python/name:os.system x\n",
    "a: |#0\n  x\n",  # block header with '#' right after the indicator
    "a: >1-\n   x\n",
    "a: |  # comment\n  x\n",
    "{model: }\n",  # empty flow value after ': '
    "a: [x: ]\n",
    "a: {? }\n",
    "a: {x: , y: 1}\n",
    "a: {x:}\n",
    "? a1\n",  # empty value right after a key: the pure parser's text start is the key's
    "[a?b]\n",  # the pure scanner ends a flow plain scalar at '?'
    "a: [x?y, z]\n",
    "a:\tb\n",  # tabs: the pure scanner rejects them outside quotes
    "a: x\ty\n",
    "a: [1,\t2]\n",
    "a: 1\n\ufeffb: 2\n",  # BOM at a line start: libyaml skips it
    "\ufeff\ufeffa: 1\n",
    "a: &x !!str \n  # note\n  v\nb: *x\n",  # properties, a comment, then the scalar
    "a: !!str &x\n",
    "a: &x\nb: *x\n",
    "%YAML 1.2\n---\na: 1\n",
    "%YAML 1.3\n---\na: 1\n",
    "%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n",
    "a: 'x\n\n  y'\nb: \"p\\\n  q\"\n",
    "a: x\u2028b: y\x85c: z\r\nd: w\n",
    "a: x\x07\n",
    "a: \ud800\n",  # a lone surrogate cannot be encoded for libyaml
    "a: " + "[" * 70 + "]" * 70 + "\n",
    "a: 1\n---\n---\n- x\n",
]


@pytest.mark.parametrize("text", DISAGREEING)
def test_texts_where_the_parsers_disagree_read_as_pure(text: str) -> None:
    assert_same_both_ways(text)


def test_an_integer_over_int_digit_limit_is_a_diagnostic_not_a_crash() -> None:
    for written in ("1" * 4001, "1" * 5000, "-" + "9" * 10_000, "0x" + "f" * 5000):
        result = load_text(f"a: 1\nb: {written}\n")
        [d] = result.diagnostics
        assert (d.code, d.line, d.column) == ("PD006", 2, 4) and "4000 digits" in d.message
        assert_same_both_ways(f"b: {written}\n")
    tagged = load_text(f"a: !!int {'7' * 5000}\n")
    assert [(d.code, d.column) for d in tagged.diagnostics] == [("PD006", 4)]
    floats = load_text(f"a: !!float {'7' * 5000}\nb: !!float 0x{'f' * 300}\n")
    assert floats.ok and floats.documents[0].data["a"] == math.inf
    assert floats.documents[0].data["b"] == math.inf
    assert load_text(f"a: {'7' * 4000}\n").ok


# --- generated YAML ------------------------------------------------------------------------

PLAIN = ["x", "a b", "true", "False", "yes", "~", "null", "12", "-3", "0x1F", "0o17", "1.10",
         ".inf", "-.Inf", ".nan", "1e3", "<<", "2024-01-01", "a:b", "a#b", "é", "x-y", "+5",
         "012", "1_000", "0b1", "."]  # fmt: skip
QUOTED = ["", "x", "a: b", "#", "'", '"', "\\", "\n", "é\u2028", " lead", "trail ", "a\tb"]


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    anchors: list[tuple[str, str]] = []  # (name, "map" | "seq" | "scalar")

    def scalar() -> str:
        kind = draw(st.sampled_from(["plain", "single", "double", "literal", "folded", "tag"]))
        if kind == "plain":
            return draw(st.sampled_from(PLAIN))
        text = draw(st.sampled_from(QUOTED))
        if kind == "single":
            return "'" + text.replace("'", "''").replace("\n", "\n\n") + "'"
        if kind == "double":
            escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            return '"' + escaped.replace("\t", "\\t") + '"'
        if kind == "tag":
            tag = draw(st.sampled_from(["!!str", "!!int", "!!float", "!!bool", "!!null", "!"]))
            return f"{tag} {draw(st.sampled_from(PLAIN))}"
        return "|" if kind == "literal" else ">-"  # the body follows on the next lines

    def props(kind: str) -> str:
        if not draw(st.booleans()) or len(anchors) > 6:
            return ""
        name = f"a{len(anchors)}"
        anchors.append((name, kind))
        return f"&{name} "

    def flow(depth: int) -> str:
        choice = draw(st.integers(0, 3 if depth < 3 else 0))
        if choice == 0:
            text = scalar()
            return draw(st.sampled_from(PLAIN)) if text in ("|", ">-") else text
        if choice == 1 and anchors:
            return "*" + draw(st.sampled_from(anchors))[0]
        if choice == 2:
            items = [flow(depth + 1) for _ in range(draw(st.integers(0, 3)))]
            return props("seq") + "[" + ", ".join(items) + "]"
        pairs = [f"{draw(st.sampled_from(['k', 'l', 'm', 'k k']))}: {flow(depth + 1)}"
                 for _ in range(draw(st.integers(0, 3)))]  # fmt: skip
        return props("map") + "{" + ", ".join(pairs) + "}"

    def block_value(indent: int, depth: int) -> str:
        pad = " " * indent
        choice = draw(st.integers(0, 3 if depth < 4 else 1))
        if choice == 0:
            text = scalar()
            if text in ("|", ">-"):
                lines = draw(st.lists(st.sampled_from(["x", "a b", "", "  y", "#z"]), max_size=3))
                return " " + text + "".join(f"\n{pad}  {line}".rstrip(" ") for line in lines)
            return " " + props("scalar") + text
        if choice == 1:
            return " " + flow(depth)
        if choice == 2:
            anchor = props("seq").strip()
            items = [f"{pad}  -{block_value(indent + 4, depth + 1)}"
                     for _ in range(draw(st.integers(1, 3)))]  # fmt: skip
            return (" " + anchor if anchor else "") + "\n" + "\n".join(items)
        anchor = props("map").strip()
        return (" " + anchor if anchor else "") + "\n" + block_map(indent + 2, depth + 1)

    def block_map(indent: int, depth: int) -> str:
        pad = " " * indent
        lines = []
        for _ in range(draw(st.integers(1, 4))):
            maps = [name for name, kind in anchors if kind == "map"]
            if maps and draw(st.integers(0, 4)) == 0:
                lines.append(f"{pad}<<: *{draw(st.sampled_from(maps))}")
                continue
            key = draw(st.sampled_from(["k", "l", "m", "n", "'q'", "k k", "1", "true"]))
            lines.append(f"{pad}{key}:{block_value(indent, depth)}")
        return "\n".join(lines)

    documents = [block_map(0, 0) for _ in range(draw(st.integers(1, 2)))]
    text = "\n---\n".join(documents) + draw(st.sampled_from(["\n", "", "\n---\n", "\n# end\n"]))
    if draw(st.booleans()):  # a small mutation: the kind of typo that makes the parsers part
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(list(" :-?[]{},#&*!|>'\"\n"))) + text[at:]
    return text


@settings(max_examples=300, deadline=None)
@given(yaml_texts())
def test_generated_yaml_reads_the_same_both_ways(text: str) -> None:
    assert_same_both_ways(text)


NOISE = list("ab1:-[]{}'\"&*!|>#,?. \n\r\x85\u2028%~")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(NOISE), max_size=60))
def test_yaml_like_noise_reads_the_same_both_ways(text: str) -> None:
    assert_same_both_ways(text)
