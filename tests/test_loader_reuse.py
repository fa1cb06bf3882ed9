"""Loading a path again (a hot reload) reuses the documents of files whose bytes did not change,
and gives exactly what a first load of the same files gives."""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from policyd import loader

POLICIES = Path(__file__).resolve().parents[1] / "policies"


def _plain(result: loader.LoadResult) -> tuple[object, ...]:
    return (
        [(d.file, d.index, repr(d.data)) for d in result.documents],
        result.files,
        [(d.file, d.line, d.column, d.code, d.message) for d in result.diagnostics],
    )


def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    bundle = tmp_path / "policies"
    shutil.copytree(POLICIES, bundle)
    first = loader.load_path(bundle)
    models = bundle / "models.yaml"
    policy = bundle / "support-bot.yaml"
    policy.write_text(policy.read_text().replace('version: "2026.11.3"', 'version: "x"'))
    second = loader.load_path(bundle)

    def doc(result: loader.LoadResult, path: Path) -> loader.Document:
        return next(d for d in result.documents if Path(d.file).name == path.name)

    assert doc(second, models) is doc(first, models)  # reused
    assert doc(second, policy) is not doc(first, policy)  # read again
    assert doc(second, policy).data["metadata"]["version"] == "x"
    loader._last_reads.clear()
    assert _plain(loader.load_path(bundle)) == _plain(second)  # as a first load


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["good", "broken", "empty", "bad-utf8", "gone"]), max_size=6))
def test_a_reload_reads_what_a_first_load_reads(steps: list[str]) -> None:
    """Whatever a file goes through, loading again equals loading it for the first time."""
    import tempfile

    contents = {
        "good": b"apiVersion: policyd/v1\nkind: ModelCatalog\nmodels: {}\n",
        "broken": b"apiVersion: [\n",
        "empty": b"",
        "bad-utf8": b"a: \xff\n",
    }
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp)
        (bundle / "other.yaml").write_bytes(contents["good"])
        for step in steps:
            target = bundle / "p.yaml"
            if step == "gone":
                target.unlink(missing_ok=True)
            else:
                target.write_bytes(contents[step])
            again = loader.load_path(bundle)
            loader._last_reads.clear()
            assert _plain(again) == _plain(loader.load_path(bundle))
