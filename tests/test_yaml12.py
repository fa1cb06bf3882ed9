"""YAML 1.2 core-schema reading: scalars, numbers, merge keys, aliases and PD001-PD009.

Read through :func:`policyd.loader.load_text`, the way every caller reaches it.
"""

from __future__ import annotations

import math
import re
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loader_helpers import one, problem

from policyd.loader import LoadResult, load_text
from policyd.sourcemap import Position
from policyd.yaml12 import MAX_MERGE_READS, MERGE_READS_PER_NODE, YamlFloat, YamlInt

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


def load_with_peak(text: str) -> tuple[LoadResult, int]:
    """The text read, and the most memory reading it held (bytes, tracemalloc)."""
    tracemalloc.start()
    try:
        return load_text(text), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_pd006_billion_laughs_is_rejected_small() -> None:
    # Bounded work shows as bounded memory: expansion stops at 100,000 alias nodes. (Its
    # time is a benchmark figure, not a unit-test assertion, on a shared machine.)
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, 10):
        prev, cur = chr(ord("a") + n - 1), chr(ord("a") + n)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    result, peak = load_with_peak("\n".join(lines) + "\n")
    [d] = result.diagnostics
    assert (d.code, d.line, d.column) == ("PD006", 2, 8)  # the first alias
    assert "100,000" in d.message and not result.documents
    assert peak < 100 * 1024 * 1024


def merge_chain(links: int, prefix: str = "a") -> str:
    """Mappings each merging the one before: the data holds links * links / 2 entries."""
    lines = [f"{prefix}0: &{prefix}0 {{k0: 0}}"]
    lines += [
        f"{prefix}{i}: &{prefix}{i}\n  <<: *{prefix}{i - 1}\n  k{i}: {i}" for i in range(1, links)
    ]
    return "\n".join(lines) + "\n"


def test_pd006_merge_key_chain_is_refused_with_bounded_work() -> None:
    # Merging stops once the file's merges have read their bound (the 4,000-long chain
    # took 1.7 s to check before), at the mapping whose merge went over
    text = merge_chain(4000)
    result, peak = load_with_peak(text)
    [d] = result.diagnostics
    assert d.code == "PD006" and not result.documents
    bound = int(re.search(r"more than ([\d,]+) entries here", d.message)[1].replace(",", ""))  # type: ignore[index]
    assert MAX_MERGE_READS < bound < MAX_MERGE_READS + MERGE_READS_PER_NODE * 4000 * 6
    assert re.match(r"a\d+: &a\d+$", text.splitlines()[d.line - 1])  # where that mapping starts
    assert "merging is bounded (1,000,000 entries plus 5 per node" in (d.hint or "")
    assert peak < 200 * 1024 * 1024


def test_merge_and_alias_bounds_hold_for_the_whole_file_not_each_document() -> None:
    # documents whose merges read 800,000 entries each (40 sources of the same 50 keys,
    # merged by 400 mappings): each loads alone, four in one file go over its bound
    keys = ", ".join(f"k{i}: {i}" for i in range(50))

    def document(n: int) -> str:
        lines = [f"s{n}x{i}: &s{n}x{i} {{{keys}}}" for i in range(40)]
        merges = ", ".join(f"*s{n}x{i}" for i in range(40))
        lines += ["items:"] + [f"  - {{<<: [{merges}], id: {j}}}" for j in range(400)]
        return "\n".join(lines) + "\n"

    assert load_text(document(0)).ok
    result = load_text("---\n".join(document(n) for n in range(4)))
    refused = result.diagnostics  # once the file is over, each later document with merges
    assert refused and all(
        d.code == "PD006" and "merge keys ('<<') in this file read more than" in d.message
        for d in refused
    )
    assert len(result.documents) + len(refused) == 4 and result.documents
    # aliases: 60,000 nodes each, 100,000 for the file
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
    bomb += "b: &b [" + ", ".join(["*a"] * 100) + "]\n"  # 1,100 nodes
    bomb += "c: [" + ", ".join(["*b"] * 55) + "]\n"  # 60,500
    assert load_text(bomb).ok
    result = load_text(bomb + "---\n" + bomb)
    [d] = result.diagnostics
    assert d.message == "aliases expand this file by more than 100,000 nodes"
    assert (d.code, d.line) == ("PD006", 6)  # the second document's first alias


def test_many_merges_of_the_same_keys_still_load() -> None:
    # 20 anchors of the same 50 keys merged by 1,001 mappings: 1,001,000 entries read,
    # 50,050 copied; a small file that loaded before the merge bound, and still does
    keys = ", ".join(f"k{i}: {i}" for i in range(50))
    lines = [f"s{n}: &s{n} {{{keys}}}" for n in range(20)]
    merges = ", ".join(f"*s{n}" for n in range(20))
    lines.append("items:")
    lines += [f"  - {{<<: [{merges}], id: {i}}}" for i in range(1001)]
    data = one("\n".join(lines) + "\n").data
    assert len(data["items"]) == 1001 and data["items"][-1]["id"] == 1000


def test_merge_chains_and_repeated_sources_within_the_bound_load() -> None:
    chain = ["a0: &a0 {k0: 0}"]
    chain += [f"a{i}: &a{i}\n  <<: *a{i - 1}\n  k{i}: {i}" for i in range(1, 300)]
    data = one("\n".join(chain) + "\n").data  # 45,000 entries read, all copied
    assert data["a299"] == {f"k{i}": i for i in range(299, -1, -1)}
    # a source listed again adds nothing, so it is not read again: 2,000 x 1,000 would be
    # 2,000,000 entries
    keys = ", ".join(f"k{i}: {i}" for i in range(1_000))
    text = f"base: &b {{{keys}}}\nuse:\n  <<: [" + ", ".join(["*b"] * 2_000) + "]\n"
    assert one(text).data["use"] == {f"k{i}": i for i in range(1_000)}


@settings(max_examples=200)
@given(
    sources=st.lists(
        st.dictionaries(st.sampled_from("pqrstu"), st.sampled_from(["v1", "v2"]), max_size=4),
        min_size=1,
        max_size=4,
    ),
    picks=st.lists(st.integers(0, 3), min_size=1, max_size=6),
    written=st.dictionaries(st.sampled_from("pqxy"), st.sampled_from(["w"]), max_size=3),
)
def test_merges_match_pyyaml(
    sources: list[dict[str, str]], picks: list[int], written: dict[str, str]
) -> None:
    """Written keys win, then earlier sources over later ones, a repeated source changing
    nothing: the same mapping as PyYAML's own merge (string values, so the YAML versions'
    scalar rules do not differ)."""
    import yaml

    lines = [f"s{i}: &s{i} {{{', '.join(f'{k}: {v}' for k, v in src.items())}}}"
             for i, src in enumerate(sources)]  # fmt: skip
    names = ", ".join(f"*s{i % len(sources)}" for i in picks)
    body = "".join(f"\n  {k}: {v}" for k, v in written.items())
    text = "\n".join(lines) + f"\nm:\n  <<: [{names}]{body}\n"
    assert one(text).data["m"] == yaml.safe_load(text)["m"]


def test_pd006_nesting_too_deep() -> None:
    text = "a: " + "[" * 70 + "]" * 70 + "\n"
    code, line, col, _ = problem(text)
    assert (code, line, col) == ("PD006", 1, 4 + 63)  # the 64th bracket opens level 65
    assert load_text("a: " + "[" * 62 + "]" * 62 + "\n").ok


def test_pd006_nesting_through_aliases() -> None:
    deep = "[" * 40 + "]" * 40
    text = f"a: &d {deep}\nb: " + "[" * 30 + "*d" + "]" * 30 + "\n"
    assert problem(text)[0] == "PD006"


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


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}'\"&*!|>#,? \t\n\x85")), max_size=60))
def test_loading_never_raises_and_positions_stay_in_the_file(text: str) -> None:
    result = load_text(text)
    lines = re.split(r"\r\n|[\r\n\x85\u2028\u2029]", result.files["<string>"])
    for d in result.diagnostics:
        assert d.code in {f"PD{n:03d}" for n in range(1, 12)}
        assert 1 <= d.line <= len(lines) + 1 and d.column >= 1
    assert result.ok == (not result.diagnostics)
