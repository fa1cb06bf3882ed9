"""Which file changes count, and what a new revision changed at a glance."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from watchfiles import Change

from policyd.bundle import load_bundle
from policyd.compile import compile_bundle
from policyd.engine import Engine, utc_now
from policyd.reload import BundleFilter, diff_revisions, is_scratch_name, prompt_files
from policyd.stages.base import Runtime

from .conftest import revision

NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
SCRATCH = st.sampled_from(
    ["{}~", ".{}.swp", ".{}.swx", ".#{}", "#{}#", "{}___jb_tmp___", "{}.tmp", ".{}"]
)


@given(NAME, st.sampled_from([".yaml", ".yml", ".md"]), SCRATCH)
def test_scratch_variants_of_any_policy_file_never_count(stem: str, ext: str, form: str) -> None:
    keep = BundleFilter("/srv/bundle", is_dir=True)
    scratch = form.format(stem + ext)
    assert is_scratch_name(scratch)
    assert not keep(Change.modified, f"/srv/bundle/{scratch}")
    assert not keep(Change.added, f"/srv/bundle/sub/{scratch}")


@given(st.lists(NAME, max_size=3), NAME, st.sampled_from([".yaml", ".yml", ".YAML"]))
def test_yaml_files_anywhere_in_a_directory_bundle_count(
    dirs: list[str], stem: str, ext: str
) -> None:
    keep = BundleFilter("/srv/bundle", is_dir=True)
    path = os.path.join("/srv/bundle", *dirs, stem + ext)
    assert keep(Change.modified, path) and keep(Change.deleted, path)


def test_directory_bundle_filter(tmp_path: Path) -> None:
    keep = BundleFilter(str(tmp_path), is_dir=True, prompt_files=[str(tmp_path / "p.prompt2")])
    (tmp_path / "sub").mkdir()
    (tmp_path / "notes.log").write_text("x")
    assert keep(Change.added, str(tmp_path / "..data"))  # ConfigMap flip
    assert keep(Change.added, str(tmp_path / "..2026_11_24_12_00_00.1" / "p.yaml"))
    assert keep(Change.modified, str(tmp_path / "prompts" / "v3.md"))
    assert keep(Change.modified, str(tmp_path / "p.prompt2"))  # a prompt file in use
    assert keep(Change.added, str(tmp_path / "sub"))  # a directory moved in
    assert keep(Change.deleted, str(tmp_path / "gone"))  # ... or out
    assert keep(Change.deleted, str(tmp_path))  # the bundle itself
    assert not keep(Change.modified, str(tmp_path / "notes.log"))
    assert not keep(Change.added, str(tmp_path / "4913"))  # vim's write probe
    assert not keep(Change.added, str(tmp_path / ".git" / "index.yaml"))
    assert not keep(Change.modified, str(tmp_path.parent / "elsewhere.yaml"))
    assert not keep(Change.modified, str(tmp_path) + "-other/p.yaml")


def test_single_file_bundle_filter(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    prompt = tmp_path / "prompts" / "sys.txt"
    keep = BundleFilter(str(policy), is_dir=False, prompt_files=[str(prompt)])
    assert keep(Change.modified, str(policy))
    assert keep(Change.modified, str(prompt))
    assert keep(Change.added, str(tmp_path / "..data"))
    assert not keep(Change.modified, str(tmp_path / "neighbour.yaml"))
    assert not keep(Change.added, str(tmp_path / ".p.yaml.swp"))


def test_prompt_files_of_the_shipped_bundle(bundle_dir: Path) -> None:
    engine = Engine.from_path(bundle_dir)
    expected = str(bundle_dir / "prompts" / "support-system" / "v3.md")
    assert prompt_files(engine.compiled) == frozenset({expected})


def _compile(path: Path) -> object:
    runtime = Runtime(utc_now, None)
    return compile_bundle(load_bundle(path), runtime)


def test_diff_names_policies_sections_and_files(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(revision(1))
    old = _compile(tmp_path)
    edited = revision(1).replace('"r1"', '"r2"').replace("ttl: 2s", "ttl: 9s")
    (tmp_path / "p.yaml").write_text(edited)
    (tmp_path / "q.yaml").write_text(revision(3).replace("name: p,", "name: q,"))
    new = _compile(tmp_path)
    diff = diff_revisions(old, new)  # type: ignore[arg-type]
    assert diff.added == ("q",) and diff.removed == ()
    (change,) = diff.changed
    assert (change.name, change.old_version, change.new_version) == ("p", "r1", "r2")
    assert change.sections == ("cache",)
    assert diff.files_added[0].endswith("q.yaml") and diff.files_changed[0].endswith("p.yaml")
    lines = diff.lines()
    assert lines[0] == "+ policy q"
    assert lines[1].startswith("~ policy p r1 -> r2 (sha256:") and lines[1].endswith("cache")
    assert diff_revisions(new, new).lines() == ["no policy changed"]  # type: ignore[arg-type]
