"""The loader: decoding, file-level checks, documents, files and directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from loader_helpers import one, problem

from policyd.loader import (
    MAX_FILE_BYTES,
    LoadResult,
    Position,
    load_path,
    load_text,
)

# --- decoding and file-level checks --------------------------------------------------------


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


def test_pd006_file_too_big() -> None:
    assert problem("a: " + "x" * MAX_FILE_BYTES)[:3] == ("PD006", 1, 1)


def test_pd006_file_too_big_on_disk(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 100)
    result = load_path(big)
    assert [d.code for d in result.diagnostics] == ["PD006"]


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
