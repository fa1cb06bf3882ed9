"""Parsed CEL expressions cached on disk: the same trees and errors, fresh objects, no lark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from policyd.cel import astcache, syntax

REPO = Path(__file__).resolve().parents[2]
EXPRESSIONS = [
    'request.tenant.tier == "enterprise" && "code" in request.tags',
    "size(request.messages) > 3 ? 1.5 : -2",
    "has(request.user.id) || request.user.country in ['DE', 'FR']",
    "request.tags.exists(t, t.startsWith('beta')) && !false",
    "timestamp('2026-01-01T00:00:00Z') < now && b'\\x00' != b''",
    "{'a': [1, 2u, 3.0e1]}['a'][0] % 2 == 1 && null == null && `x-y` == 'z'",
]
BROKEN = ["request.tier = 'pro'", "size(request.messages", "'unclosed"]

# Parses EXPRESSIONS and BROKEN in a fresh process; prints the trees, the errors and
# whether lark was imported, as JSON.
SCRIPT = """
import dataclasses, json, sys
from policyd.cel import syntax
from policyd.cel.errors import CompileError
good, bad = json.loads(sys.argv[1]), json.loads(sys.argv[2])
trees = [repr(dataclasses.asdict(syntax.parse(s))) for s in good]
lark_loaded = "lark" in sys.modules
errors = []
for s in bad:
    try:
        syntax.parse(s)
    except CompileError as exc:
        errors.append([exc.code, str(exc), exc.offset, exc.hint])
print(json.dumps({"trees": trees, "errors": errors, "lark": lark_loaded}))
"""


def _run(cache_home: Path, **env: str) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if k != "POLICYD_NO_CACHE"}
    environment.update(PYTHONPATH=str(REPO), XDG_CACHE_HOME=str(cache_home), **env)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(EXPRESSIONS), json.dumps(BROKEN)],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_warm_process_builds_the_same_trees_without_lark(tmp_path: Path) -> None:
    uncached = _run(tmp_path / "none", POLICYD_NO_CACHE="1")
    assert not (tmp_path / "none").exists()
    cold = _run(tmp_path)
    [cache] = (tmp_path / "policyd").glob("cel-ast-*.cache")
    assert cache.stat().st_size > 0
    warm = _run(tmp_path)
    assert uncached["lark"] and cold["lark"]
    assert cold["trees"] == warm["trees"] == uncached["trees"]
    # syntax errors are never cached: the parser reports them, the same way, every time
    assert len(uncached["errors"]) == len(BROKEN)  # type: ignore[arg-type]
    assert cold["errors"] == warm["errors"] == uncached["errors"]


def test_warm_and_cold_trees_compile_alike_with_lark_never_loaded(tmp_path: Path) -> None:
    _run(tmp_path)  # fills the cache
    code = (
        "import sys\n"
        "from policyd import cel\n"
        f"for s in {[EXPRESSIONS[0], EXPRESSIONS[2], EXPRESSIONS[3]]!r}:\n"
        "    e = cel.compile(s, {'request': {'tenant': {'tier': 'string'}, 'tags': 'list',"
        " 'messages': 'list', 'user': {'id': 'string', 'country': 'string'}}})\n"
        "    print(e.result_type, e.native, sorted(e.paths), e.cost, e.python_source)\n"
        "print('lark' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "POLICYD_NO_CACHE"}
    env.update(PYTHONPATH=str(REPO), XDG_CACHE_HOME=str(tmp_path))
    warm = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    env["POLICYD_NO_CACHE"] = "1"
    cold = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert warm.returncode == cold.returncode == 0, warm.stderr + cold.stderr
    assert warm.stdout.splitlines()[:-1] == cold.stdout.splitlines()[:-1]
    assert warm.stdout.splitlines()[-1] == "False"


def test_every_hit_is_a_fresh_tree(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("POLICYD_NO_CACHE", raising=False)
    for name, value in (("_entries", None), ("_path", None), ("_dirty", False), ("_used", set())):
        monkeypatch.setattr(astcache, name, value)
    first = syntax.parse("request.a + 1 > 2")
    one, two = syntax.parse("request.a + 1 > 2"), syntax.parse("request.a + 1 > 2")
    assert one is not two and one is not first
    one.error = "annotated by a checker"  # the checker writes into the nodes it visits
    assert syntax.parse("request.a + 1 > 2").error is None


def test_a_corrupt_cache_file_is_ignored(tmp_path: Path) -> None:
    expected = _run(tmp_path / "clean")
    [cache] = (tmp_path / "clean" / "policyd").glob("cel-ast-*.cache")
    (tmp_path / "bad" / "policyd").mkdir(parents=True, mode=0o700)
    (tmp_path / "bad" / "policyd" / cache.name).write_bytes(cache.read_bytes()[:50])
    again = _run(tmp_path / "bad")
    assert again["trees"] == expected["trees"] and again["lark"]
    assert (tmp_path / "bad" / "policyd" / cache.name).stat().st_size == cache.stat().st_size


def test_an_overfull_cache_keeps_what_the_last_process_used(tmp_path: Path) -> None:
    """A test suite or a fuzzer may fill the cache; a policy's expressions still get in."""
    code = (
        "from policyd.cel import astcache, syntax\n"
        "astcache.MAX_ENTRIES = 3\n"
        "import sys\n"
        "for s in sys.argv[1:]:\n"
        "    syntax.parse(s)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "POLICYD_NO_CACHE"}
    env.update(PYTHONPATH=str(REPO), XDG_CACHE_HOME=str(tmp_path))
    fill = [f"request.n == {i}" for i in range(5)]
    subprocess.run([sys.executable, "-c", code, *fill[:3]], env=env, check=True)
    subprocess.run([sys.executable, "-c", code, *fill[3:]], env=env, check=True)
    [cache] = (tmp_path / "policyd").glob("cel-ast-*.cache")
    import pickle

    assert set(pickle.loads(cache.read_bytes())) == set(fill[3:])
