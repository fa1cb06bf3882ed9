"""The loader: YAML 1.2 semantics, exact error positions, source maps, files and directories."""

from __future__ import annotations

import math
import os
import re
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd.loader import (
    MAX_FILE_BYTES,
    Document,
    LoadResult,
    Position,
    YamlFloat,
    YamlInt,
    load_path,
    load_text,
)


def one(text: str | bytes) -> Document:
    result = load_text(text)
    assert result.ok, result.diagnostics
    assert len(result.documents) == 1
    return result.documents[0]


def problem(text: str | bytes) -> tuple[str, int, int, str]:
    """The single diagnostic for ``text``: (code, line, column, message)."""
    result = load_text(text)
    assert not result.ok and not result.documents
    assert len(result.diagnostics) == 1, result.diagnostics
    d = result.diagnostics[0]
    assert d.hint, "every loader error carries a fix hint"
    return d.code, d.line, d.column, d.message


# --- YAML 1.2 core schema ------------------------------------------------------------------

SCALARS = [
    ("true", True), ("True", True), ("TRUE", True), ("false", False), ("FALSE", False),
    ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("y", "y"), ("n", "n"),
    ("NO", "NO"), ("tRUE", "tRUE"),
    ("~", None), ("null", None), ("Null", None), ("NULL", None), ("", None), ("nULL", "nULL"),
    ("12", 12), ("-3", -3), ("+5", 5), ("012", 12), ("0o17", 15), ("0x1F", 31), ("0xff", 255),
    ("0b101", "0b101"), ("1_000", "1_000"), ("12:30", "12:30"), ("1:20:30", "1:20:30"),
    ("1.5", 1.5), ("1.10", 1.1), ("-.5", -0.5), ("1.", 1.0), ("1e3", 1000.0), ("6.02E+23", 6.02e23),
    (".inf", math.inf), ("-.Inf", -math.inf), ("+.INF", math.inf),
    ("2024-01-01", "2024-01-01"), ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
    ("0o8", "0o8"), ("0x", "0x"), ("-0x1", "-0x1"), (".", "."), ("e3", "e3"), ("<<", "<<"),
    ("'true'", "true"), ('"12"', "12"), ("'~'", "~"), ("! 12", "12"), ("!!str 1.10", "1.10"),
    ("!!int '7'", 7), ("!!float 1", 1.0), ("!!bool 'false'", False), ("!!null ''", None),
]  # fmt: skip


@pytest.mark.parametrize(("written", "expected"), SCALARS)
def test_yaml_12_core_scalars(written: str, expected: object) -> None:
    value = one(f"v: {written}\n").data["v"]
    assert value == expected
    assert type(value) is not bool or type(expected) is bool  # 1 == True must not pass


def test_nan_and_types() -> None:
    data = one("a: .nan\nb: .NaN\nc: 12\nd: 1.5\ne: true\n").data
    assert math.isnan(data["a"]) and math.isnan(data["b"])
    assert type(data["c"]) is YamlInt and type(data["d"]) is YamlFloat and data["e"] is True


def test_numbers_keep_their_text() -> None:
    data = one("version: 1.10\nn: 0x1F\nz: 007\nbig: 1e3\nt: !!float 2\n").data
    assert data["version"] == 1.1 and data["version"].raw == "1.10"
    assert data["n"] == 31 and data["n"].raw == "0x1F"
    assert data["z"] == 7 and data["z"].raw == "007"
    assert data["big"].raw == "1e3" and data["t"].raw == "2" and isinstance(data["t"], float)
    assert repr(data["version"]) == "1.1" and data["n"] + 1 == 32 and type(data["n"] + 1) is int


def test_yaml_numbers_survive_copy_and_pickle() -> None:
    import copy
    import pickle

    value = one("v: 1.10\n").data["v"]
    for clone in (copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
        assert type(clone) is YamlFloat and clone.raw == "1.10"


def test_mappings_keep_file_order_and_strings_are_plain() -> None:
    data = one("z: 1\na: {y: x, b: 'q'}\nm: [3, 1]\n").data
    assert list(data) == ["z", "a", "m"] and list(data["a"]) == ["y", "b"]
    assert type(data["a"]["b"]) is str and data["m"] == [3, 1]


def test_aliases_are_expanded_into_independent_copies() -> None:
    data = one("base: &b {tags: [x]}\nother: *b\n").data
    assert data["other"] == {"tags": ["x"]}
    data["other"]["tags"].append("y")
    assert data["base"]["tags"] == ["x"]


def test_merge_keys() -> None:
    doc = one("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  w: 0\n  <<: [*a, *b]\n  x: 9\n")
    assert doc.data["c"] == {"w": 0, "x": 9, "y": 1, "z": 2}
    assert list(doc.data["c"]) == ["w", "y", "z", "x"]  # merged keys sit where "<<" is
    assert doc.source_map.value(("c", "y")) == Position(1, 17)  # where the merged value lives
    assert one('"<<": literal\n').data == {"<<": "literal"}


def test_explicit_key_after_merge_is_not_a_duplicate() -> None:
    assert one("a: &a {x: 1}\nb: {<<: *a, x: 2}\n").data["b"] == {"x": 2}


# --- errors, each with its exact position --------------------------------------------------


def test_pd001_syntax_error_points_at_the_problem() -> None:
    code, line, col, message = problem("a: 1\nb: c: d\n")
    assert (code, line, col) == ("PD001", 2, 5) and "mapping values" in message


def test_pd001_unclosed_quote_points_at_the_quote() -> None:
    code, line, col, message = problem("a: 1\nb: 'open\nc: 2\n")
    assert (code, line, col) == ("PD001", 2, 4) and "end of stream" in message


def test_pd001_bad_indentation() -> None:
    assert problem("a:\n  b: 1\n c: 2\n")[:3] == ("PD001", 3, 2)


def test_pd001_undefined_and_recursive_alias() -> None:
    assert problem("a: 1\nb: *nope\n")[:3] == ("PD001", 2, 4)
    assert problem("a: &x\n  - *x\n")[:3] == ("PD001", 2, 5)


def test_pd001_control_character() -> None:
    code, line, col, message = problem("a: 1\nb: x\x07y\n")
    assert (code, line, col) == ("PD001", 2, 5) and "U+0007" in message


def test_pd002_duplicate_key_at_second_with_first_line_in_hint() -> None:
    result = load_text("policy:\n  name: a\n  tier: x\n  name: b\n")
    [d] = result.diagnostics
    assert (d.code, d.line, d.column) == ("PD002", 4, 3)
    assert "'name'" in d.message and d.hint is not None and "line 2" in d.hint
    assert not result.documents


def test_pd002_in_flow_mapping() -> None:
    assert problem("a: {x: 1, y: 2, x: 3}\n")[:3] == ("PD002", 1, 17)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a:\n\tb: 1\n", 2, 1),
        ("a:\n  b: 1\n  \tc: 2\n", 3, 3),
        ("a: |\n\tfoo\n", 2, 1),
        ("\tkey: value\n", 1, 1),
    ],
)
def test_pd003_tab_indentation(text: str, line: int, column: int) -> None:
    result = load_text(text)
    [d] = result.diagnostics
    assert (d.code, d.line, d.column) == ("PD003", line, column)
    assert "indentation" in d.message and d.hint is not None and "tabs" in d.hint


def test_pd003_tab_as_separator() -> None:
    code, line, col, message = problem("a: 1\nb:\tvalue\n")
    assert (code, line, col) == ("PD003", 2, 3) and "tab" in message


def test_tabs_inside_quoted_strings_are_fine() -> None:
    assert one("a: \"x\ty\"\nb: 'p\tq'\n").data == {"a": "x\ty", "b": "p\tq"}


def test_pd004_first_bad_byte_with_character_column() -> None:
    code, line, col, _ = problem("a: 1\nb: héllo\n".encode() + b"c: \xe9t\xe9\n")
    assert (code, line, col) == ("PD004", 3, 4)
    code, line, col, _ = problem("a: 1\nname: ünï".encode() + b"\xff\n")
    assert (code, line, col) == ("PD004", 2, 10)  # characters, not bytes, before the bad one


def test_pd004_utf16_gets_a_specific_hint() -> None:
    result = load_text("a: 1\n".encode("utf-16"))
    [d] = result.diagnostics
    assert d.code == "PD004" and d.hint is not None and "UTF-16" in d.hint


def test_utf8_bom_is_accepted_and_positions_ignore_it() -> None:
    doc = one(b"\xef\xbb\xbfa: 1\nb: 2\n")
    assert doc.data == {"a": 1, "b": 2} and doc.source_map.key(("b",)) == Position(2, 1)


@pytest.mark.parametrize("text", [b"", "", "   \n\n", "# only a comment\n", "---\n", "--- \n...\n"])
def test_pd005_empty_file(text: str | bytes) -> None:
    assert problem(text)[:3] == ("PD005", 1, 1)


def test_pd006_billion_laughs_is_rejected_fast_and_small() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, 10):
        prev, cur = chr(ord("a") + n - 1), chr(ord("a") + n)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    tracemalloc.start()
    started = time.perf_counter()
    result = load_text("\n".join(lines) + "\n")
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    [d] = result.diagnostics
    assert (d.code, d.line, d.column) == ("PD006", 2, 8)  # the first alias
    assert "100,000" in d.message and not result.documents
    assert elapsed < 2.0 and peak < 100 * 1024 * 1024


def test_pd006_nesting_too_deep() -> None:
    text = "a: " + "[" * 70 + "]" * 70 + "\n"
    code, line, col, _ = problem(text)
    assert (code, line, col) == ("PD006", 1, 4 + 63)  # the 64th bracket opens level 65
    assert load_text("a: " + "[" * 62 + "]" * 62 + "\n").ok


def test_pd006_nesting_through_aliases() -> None:
    deep = "[" * 40 + "]" * 40
    text = f"a: &d {deep}\nb: " + "[" * 30 + "*d" + "]" * 30 + "\n"
    assert problem(text)[0] == "PD006"


def test_pd006_file_too_big() -> None:
    assert problem("a: " + "x" * MAX_FILE_BYTES)[:3] == ("PD006", 1, 1)


def test_pd006_file_too_big_on_disk(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 100)
    result = load_path(big)
    assert [d.code for d in result.diagnostics] == ["PD006"]


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("a: !!python/object/apply:os.system [ls]\n", 4),
        ("a: !Ref thing\n", 4),
        ("a: !!set {x}\n", 4),
        ("a: !!binary aGk=\n", 4),
        ("a: !!int abc\n", 4),
        ("a: !!bool yes\n", 4),
        ("a: !!map [1]\n", 4),
    ],
)
def test_pd007_unsupported_tags(text: str, column: int) -> None:
    assert problem(text)[:3] == ("PD007", 1, column)


def test_pd008_document_not_a_mapping() -> None:
    assert problem("- a\n- b\n")[:3] == ("PD008", 1, 1)
    assert problem("just text\n")[:3] == ("PD008", 1, 1)
    result = load_text("a: 1\n---\n- x\n")
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [("PD008", 3, 1)]
    assert [d.data for d in result.documents] == [{"a": 1}]  # the good document is kept


@pytest.mark.parametrize(
    ("text", "line", "column", "kind"),
    [
        ("a: 1\n200: ok\n", 2, 1, "int"),
        ("true: x\n", 1, 1, "bool"),
        ("1.5: x\n", 1, 1, "float"),
        ("~: x\n", 1, 1, "null"),
        ("a:\n  ? [x, y]\n  : 1\n", 2, 5, "list"),
        ("{[a]: 1}\n", 1, 2, "list"),
    ],
)
def test_pd009_non_string_keys(text: str, line: int, column: int, kind: str) -> None:
    code, got_line, got_col, message = problem(text)
    assert (code, got_line, got_col) == ("PD009", line, column) and kind in message


def test_pd009_bad_merge_value() -> None:
    assert problem("a:\n  <<: 5\n")[:3] == ("PD009", 2, 7)


def test_errors_do_not_cascade_and_all_are_reported() -> None:
    result = load_text("a: 1\na: 2\nb: !Thing x\n!!python/name:x : 3\nc: 4\n")
    codes = [(d.code, d.line) for d in result.diagnostics]
    assert codes == [("PD002", 2), ("PD007", 3), ("PD007", 4)]


def test_pd010_directory_without_yaml(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("x")
    (tmp_path / ".hidden.yaml").write_text("a: 1\n")
    result = load_path(tmp_path)
    assert [d.code for d in result.diagnostics] == ["PD010"] and not result.documents


def test_pd011_missing_path(tmp_path: Path) -> None:
    result = load_path(tmp_path / "nope")
    [d] = result.diagnostics
    assert d.code == "PD011" and "nope" in d.message and not result.ok


def test_pd011_unreadable_entries(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a: 1\n")
    (tmp_path / "broken.yaml").symlink_to(tmp_path / "gone.yaml")
    os.mkfifo(tmp_path / "pipe.yaml")  # would block a naive reader
    result = load_path(tmp_path)
    assert [(d.code, Path(d.file).name) for d in result.diagnostics] == [
        ("PD011", "broken.yaml"),
        ("PD011", "pipe.yaml"),
    ]
    assert [d.data for d in result.documents] == [{"a": 1}]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_pd011_permission_denied(tmp_path: Path) -> None:  # pragma: no cover - not as root
    f = tmp_path / "a.yaml"
    f.write_text("a: 1\n")
    f.chmod(0)
    assert [d.code for d in load_path(f).diagnostics] == ["PD011"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}'\"&*!|>#,? \t\n\x85")), max_size=60))
def test_loading_never_raises_and_positions_stay_in_the_file(text: str) -> None:
    result = load_text(text)
    lines = re.split(r"\r\n|[\r\n\x85\u2028\u2029]", result.files["<string>"])
    for d in result.diagnostics:
        assert d.code in {f"PD{n:03d}" for n in range(1, 12)}
        assert 1 <= d.line <= len(lines) + 1 and d.column >= 1
    assert result.ok == (not result.diagnostics)


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


# --- documents, files, directories ---------------------------------------------------------


def test_multiple_documents() -> None:
    text = "---\na: 1\n---\n---\nb: 2\n...\n---\nc: [3]\n---\n"
    result = load_text(text, file="bundle.yaml")
    assert result.ok
    assert [(d.file, d.index, d.data) for d in result.documents] == [
        ("bundle.yaml", 0, {"a": 1}),
        ("bundle.yaml", 2, {"b": 2}),
        ("bundle.yaml", 3, {"c": [3]}),
    ]
    assert result.documents[1].source_map.key(("b",)) == Position(5, 1)
    assert result.documents[2].source_map.value(("c", 0)) == Position(8, 5)
    assert result.files == {"bundle.yaml": text}


def test_anchors_do_not_cross_documents() -> None:
    result = load_text("a: &x 1\n---\nb: *x\n")
    assert [d.data for d in result.documents] == [{"a": 1}]
    assert [(d.code, d.line) for d in result.diagnostics] == [("PD001", 3)]


def test_documents_before_a_syntax_error_are_kept() -> None:
    result = load_text("a: 1\n---\nb: [\n")
    assert [d.data for d in result.documents] == [{"a": 1}]
    assert [d.code for d in result.diagnostics] == ["PD001"]


def tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_directory_recursion_order_and_filters(tmp_path: Path, monkeypatch) -> None:
    tree(
        tmp_path / "policies",
        {
            "b.yaml": "n: b\n",
            "a/z.yml": "n: a/z\n",
            "a/b/c.yaml": "n: a/b/c\n",
            "a.yaml": "n: a\n",
            "c.YAML": "n: c\n",
            "notes.txt": "n: no\n",
            ".git/x.yaml": "n: hidden\n",
            ".hidden.yaml": "n: hidden\n",
            "d/.also.yml": "n: hidden\n",
        },
    )
    monkeypatch.chdir(tmp_path)
    result = load_path("policies")
    assert result.ok
    names = [d.data["n"] for d in result.documents]
    assert names == ["a/b/c", "a/z", "a", "b", "c"]
    sep = os.sep
    assert [d.file for d in result.documents][:2] == [
        f"policies{sep}a{sep}b{sep}c.yaml",
        f"policies{sep}a{sep}z.yml",
    ]
    assert set(result.files) == {d.file for d in result.documents}
    # an absolute path under the current directory is still displayed relative to it
    assert load_path(tmp_path / "policies" / "b.yaml").documents[0].file == f"policies{sep}b.yaml"


def test_files_outside_the_current_directory_are_shown_absolute(
    tmp_path: Path, monkeypatch
) -> None:
    tree(tmp_path, {"p/x.yaml": "a: 1\n", "elsewhere/.keep": ""})
    monkeypatch.chdir(tmp_path / "elsewhere")
    [doc] = load_path(tmp_path / "p").documents
    assert doc.file == str(tmp_path / "p" / "x.yaml")


def test_kubernetes_configmap_layout(tmp_path: Path, monkeypatch) -> None:
    mount = tmp_path / "config"
    real = mount / "..2026_01_02_03_04_05.123456789"
    tree(real, {"policy.yaml": "kind: Policy\n", "tests.yaml": "kind: PolicyTest\n"})
    (mount / "..data").symlink_to(real.name)
    for name in ("policy.yaml", "tests.yaml"):
        (mount / name).symlink_to(f"..data/{name}")
    (mount / "alias.yaml").symlink_to("..data/policy.yaml")  # the same real file again
    monkeypatch.chdir(tmp_path)
    result = load_path("config")
    assert result.ok
    assert [(d.file, d.data["kind"]) for d in result.documents] == [
        (os.path.join("config", "alias.yaml"), "Policy"),
        (os.path.join("config", "tests.yaml"), "PolicyTest"),
    ]


def test_directory_symlink_loops_terminate(tmp_path: Path) -> None:
    tree(tmp_path, {"p/a.yaml": "a: 1\n"})
    (tmp_path / "p" / "loop").symlink_to(tmp_path / "p")
    result = load_path(tmp_path / "p")
    assert result.ok and [d.data for d in result.documents] == [{"a": 1}]


def test_load_path_collects_every_files_problems(tmp_path: Path) -> None:
    tree(tmp_path, {"a.yaml": "a: 1\na: 2\n", "b.yaml": "", "c.yaml": "ok: true\n"})
    result = load_path(tmp_path)
    assert [(Path(d.file).name, d.code) for d in result.diagnostics] == [
        ("a.yaml", "PD002"),
        ("b.yaml", "PD005"),
    ]
    assert [d.data for d in result.documents] == [{"ok": True}]
    assert isinstance(result, LoadResult) and not result.ok
    assert len(result.files) == 3


def test_a_single_file_with_any_extension_loads(tmp_path: Path) -> None:
    f = tmp_path / "policy.txt"
    f.write_bytes("a: é\n".encode())
    assert load_path(f).documents[0].data == {"a": "é"}
