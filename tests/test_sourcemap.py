"""Source maps: positions of keys and values, raw text, and scalar_offset carets."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loader_helpers import one

from policyd.loader import load_text
from policyd.sourcemap import Lines, Position

# --- source maps ---------------------------------------------------------------------------

NESTED = """\
apiVersion: policyd/v1
metadata:
  name: bot
  labels: {team: support, "tier": gold}
tiers:
  economy:
    targets:
      - model: gpt-4o-mini
        weight: 80
      - {model: haiku, weight: 20}
    fallback: [a, b]
"""


@pytest.mark.parametrize(
    ("path", "key", "value"),
    [
        (("apiVersion",), (1, 1), (1, 13)),
        (("metadata",), (2, 1), (3, 3)),
        (("metadata", "name"), (3, 3), (3, 9)),
        (("metadata", "labels", "team"), (4, 12), (4, 18)),
        (("metadata", "labels", "tier"), (4, 27), (4, 35)),
        (("tiers", "economy", "targets"), (7, 5), (8, 7)),
        (("tiers", "economy", "targets", 0), (8, 9), (8, 9)),
        (("tiers", "economy", "targets", 0, "weight"), (9, 9), (9, 17)),
        (("tiers", "economy", "targets", 1), (10, 9), (10, 9)),
        (("tiers", "economy", "targets", 1, "weight"), (10, 24), (10, 32)),
        (("tiers", "economy", "fallback", 1), (11, 19), (11, 19)),
        ((), (1, 1), (1, 1)),
    ],
)
def test_positions_of_keys_and_values(
    path: tuple[str | int, ...], key: tuple[int, int], value: tuple[int, int]
) -> None:
    sm = one(NESTED).source_map
    assert sm.key(path) == Position(*key)
    assert sm.value(path) == Position(*value)


def test_missing_paths_fall_back_to_the_nearest_ancestor() -> None:
    sm = one(NESTED).source_map
    assert sm.value(("metadata", "nope", "deeper")) == Position(3, 3)
    assert sm.key(("metadata", "nope")) == Position(3, 3)
    assert sm.value(("tiers", "economy", "targets", 7)) == Position(8, 7)
    assert sm.value(("tiers", "economy", "targets", "model")) == Position(8, 7)
    assert sm.value(("apiVersion", 0)) == Position(1, 13)
    assert sm.raw(("metadata", "nope")) is None


def test_positions_with_crlf_and_tags() -> None:
    sm = one("a: 1\r\nb: !!str 2\r\nc: &x 3\r\n").source_map
    assert sm.value(("b",)) == Position(2, 4) and sm.raw(("b",)) == "2"
    assert sm.scalar_offset(("b",), 0) == Position(2, 10)
    assert sm.value(("c",)) == Position(3, 4) and sm.raw(("c",)) == "3"


def test_raw_text_as_written() -> None:
    sm = one("v: 1.10\nq: 'it''s'\nl: [1]\ne:\n").source_map
    assert sm.raw(("v",)) == "1.10"
    assert sm.raw(("q",)) == "'it''s'"
    assert sm.raw(("l",)) is None
    assert sm.raw(("e",)) == ""


# --- scalar_offset: a caret inside a CEL expression ----------------------------------------


def caret(text: str, path: tuple[str | int, ...], offset: int) -> str:
    """The source character that scalar_offset points at."""
    doc = one(text)
    pos = doc.source_map.scalar_offset(path, offset)
    return text.splitlines()[pos.line - 1][pos.column - 1 :][:1]


def test_scalar_offset_plain() -> None:
    text = "when: request.tier == 'gold' && x > 1\n"
    doc = one(text)
    assert doc.source_map.scalar_offset(("when",), 0) == Position(1, 7)
    assert doc.source_map.scalar_offset(("when",), 8) == Position(1, 15)
    expr = doc.data["when"]
    for i, c in enumerate(expr):
        assert caret(text, ("when",), i) == c


def test_scalar_offset_quoted() -> None:
    text = "a: 'it''s here'\nb: \"x\\ty\\u00e9z\"\n"
    assert one(text).data == {"a": "it's here", "b": "x\tyéz"}
    sm = one(text).source_map
    assert sm.scalar_offset(("a",), 0) == Position(1, 5)
    assert sm.scalar_offset(("a",), 3) == Position(1, 9)  # 's' after the doubled quote
    assert sm.scalar_offset(("b",), 1) == Position(2, 6)  # the tab escape starts at '\'
    assert sm.scalar_offset(("b",), 3) == Position(2, 9)  # é is the \u00e9 escape
    assert sm.scalar_offset(("b",), 4) == Position(2, 15)  # z
    assert sm.scalar_offset(("b",), 5) == Position(2, 16)  # end: the closing quote


def test_scalar_offset_literal_block() -> None:
    text = "rules:\n  - when: |\n      a == 1 &&\n        b.c > 2\n"
    doc = one(text)
    assert doc.data["rules"][0]["when"] == "a == 1 &&\n  b.c > 2\n"
    sm = doc.source_map
    assert sm.scalar_offset(("rules", 0, "when"), 0) == Position(3, 7)
    assert sm.scalar_offset(("rules", 0, "when"), 12) == Position(4, 9)  # b
    assert sm.scalar_offset(("rules", 0, "when"), 14) == Position(4, 11)  # c


def test_scalar_offset_folded_and_multiline() -> None:
    folded = "when: >-\n  request.a &&\n  request.b\n"
    doc = one(folded)
    assert doc.data["when"] == "request.a && request.b"
    assert doc.source_map.scalar_offset(("when",), 13) == Position(3, 3)
    assert doc.source_map.scalar_offset(("when",), 12) == Position(2, 15)  # folded break
    plain = "when: request.a &&\n  request.b\n"
    assert one(plain).source_map.scalar_offset(("when",), 13) == Position(2, 3)
    dq = 'when: "request.a &&\n   request.b"\n'
    assert one(dq).source_map.scalar_offset(("when",), 13) == Position(2, 4)


def test_scalar_offset_falls_back_for_non_strings() -> None:
    sm = one("n: 12\nm: {a: 1}\n").source_map
    assert sm.scalar_offset(("n",), 1) == Position(1, 4)
    assert sm.scalar_offset(("m",), 1) == Position(2, 4)
    assert sm.scalar_offset(("zz",), 1) == Position(1, 1)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"))))
def test_scalar_offset_maps_every_json_string_character(value: str) -> None:
    import json

    written = json.dumps(value, ensure_ascii=False)  # a valid YAML double-quoted scalar
    text = f"k: {written}\n"
    result = load_text(text)
    if not result.ok:  # characters YAML refuses outright, e.g. U+FEFF
        assert result.diagnostics[0].code == "PD001"
        return
    doc = result.documents[0]
    assert doc.data["k"] == value
    positions = [doc.source_map.scalar_offset(("k",), i) for i in range(len(value))]
    assert all(p.line == 1 for p in positions)
    columns = [p.column for p in positions]
    assert columns == sorted(set(columns))  # strictly increasing
    for i, c in enumerate(value):
        if c not in '"\\':
            assert text[columns[i] - 1] == c


# --- lines ---------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.lists(st.sampled_from(["a", " ", "\n", "\r", "\r\n", "\x85", "\u2028", "\u2029", "é"])))
def test_line_starts_are_after_every_yaml_line_break(parts: list[str]) -> None:
    """Lines finds "\\n"-only texts with str.find: the same starts as YAML's break rule."""
    text = "".join(parts)
    yaml_breaks = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
    assert Lines(text).starts == [0, *(m.end() for m in yaml_breaks.finditer(text))]
