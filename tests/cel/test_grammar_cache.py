"""The CEL grammar's lark parser: built without cel-python, cached per user, same trees."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lark import Token, Tree

from policyd.cel import grammar

REPO = Path(__file__).resolve().parents[2]
EXPRESSIONS = [
    'request.tenant.tier == "enterprise" && "code" in request.tags',
    "size(request.messages) > 3 ? 1.5 : -2",
    "has(request.user.id) || request.user.country in ['DE', 'FR']",
    "request.tags.exists(t, t.startsWith('beta')) && !false",
    "timestamp('2026-01-01T00:00:00Z') < now && b'\\x00' != b''",
    "{'a': [1, 2u, 3.0e1]}['a'][0] % 2 == 1 && null == null",
]


def _plain(node: Any) -> Any:
    """A lark tree as plain data: rule names, token types, values and positions."""
    if isinstance(node, Tree):
        return (str(node.data), [_plain(child) for child in node.children])
    assert isinstance(node, Token)
    return (node.type, str(node), node.start_pos, node.end_pos)


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("POLICYD_NO_CACHE", raising=False)
    monkeypatch.setattr(grammar, "_parser", None)
    return tmp_path / "policyd"


def test_cached_and_uncached_parsers_build_the_same_trees(
    fresh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = grammar.parser()  # builds and writes the cache
    [cache] = fresh.iterdir()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700 and cache.stat().st_size > 0
    monkeypatch.setattr(grammar, "_parser", None)
    loaded = grammar.parser()  # reads it back
    assert loaded is not built
    monkeypatch.setattr(grammar, "_parser", None)
    monkeypatch.setenv("POLICYD_NO_CACHE", "1")
    uncached = grammar.parser()
    for source in EXPRESSIONS:
        trees = [_plain(p.parse(source)) for p in (built, loaded, uncached)]
        assert trees[0] == trees[1] == trees[2], source


def test_a_corrupt_cache_is_rebuilt(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grammar.parser()
    [cache] = fresh.iterdir()
    cache.write_bytes(cache.read_bytes()[:100])
    monkeypatch.setattr(grammar, "_parser", None)
    assert _plain(grammar.parser().parse("1 + 2 == 3"))[0] == "expr"


def test_cel_python_shares_the_parser_on_the_slow_path() -> None:
    code = (
        "from policyd import cel\n"
        "from celpy.celparser import CELParser\n"
        "from policyd.cel import grammar\n"
        "cel.compile('1 == 1', {'request': {}})\n"
        "import celpy\n"
        "grammar.parser()\n"
        "assert CELParser.CEL_PARSER is grammar.parser()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def test_check_does_not_import_cel_python() -> None:
    code = (
        "import sys\n"
        "from policyd.bundle import load_bundle\n"
        f"assert load_bundle({str(REPO / 'policies')!r}).ok\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "assert not loaded & {'celpy', 'pendulum', 'asyncio', 'policyd.engine'}, loaded\n"
        "assert 'policyd.engine' not in sys.modules\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def test_no_cache_in_a_directory_others_can_write(
    fresh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh.mkdir(mode=0o700)
    fresh.chmod(0o777)
    assert _plain(grammar.parser().parse("1 == 1"))[0] == "expr"
    assert list(fresh.iterdir()) == []
