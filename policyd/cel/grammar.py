"""cel-python's CEL grammar as a lark LALR parser: built once per process, cached on disk.

Owns :func:`parser` and :func:`cache_dir` (shared with :mod:`policyd.cel.astcache`).
The parser is the one ``celpy.celparser.CELParser`` builds (same grammar file, same
options, so cel-python's evaluator on the slow path shares it), built
without importing cel-python (its package pulls in its evaluator, pendulum and re2: ~50 ms),
and through lark's grammar cache: constructing the LALR tables takes ~150 ms, loading them
~15 ms, which is most of what ``policyd check`` costs on a small bundle.

The cache is one file per grammar/option/lark/Python version under ``$XDG_CACHE_HOME/policyd``
(else ``~/.cache/policyd``), a directory only its user can write, since lark reads it with
pickle.  Lark checks the digest in the file and rebuilds on any mismatch or read error;
the file is written under a temporary name and renamed, so a concurrent run never reads half
of it.  ``POLICYD_NO_CACHE=1``, or a cache directory that cannot be created, skips the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "parser"]

_lock = threading.Lock()
_parser: Any = None


def _ambiguous_literals(token: Any) -> Any:
    """cel-python's lexer callback: ``true``/``false`` lexed as IDENT are boolean literals."""
    from lark import Token

    if token.value in ("true", "false"):
        return Token("BOOL_LIT", token.value)
    return token


def _grammar() -> str:
    spec = importlib.util.find_spec("celpy")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a dependency
        raise ImportError("cel-python is not installed")
    return (Path(next(iter(spec.submodule_search_locations))) / "cel.lark").read_text()


def cache_dir() -> str | None:
    """The per-user cache directory (made 0700 if missing), or None when ``POLICYD_NO_CACHE``
    is set, it cannot be made, or others can write to it (its files are read with pickle)."""
    if os.environ.get("POLICYD_NO_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "policyd")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.stat(directory)
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return None  # others can write there: do not unpickle what they wrote
    except (OSError, AttributeError):  # AttributeError: no os.getuid (Windows)
        return None
    return directory


def _cache_file(grammar: str) -> str | None:
    directory = cache_dir()
    if directory is None:
        return None
    import lark

    key = f"{grammar}\0{lark.__version__}\0{sys.version_info[:2]}".encode()
    return os.path.join(directory, f"cel-lark-{hashlib.sha256(key).hexdigest()[:16]}.cache")


def _build(cache: str | bool) -> Any:
    import lark

    return lark.Lark(
        _grammar(),
        parser="lalr",
        start="expr",
        debug=True,
        g_regex_flags=re.M,
        lexer_callbacks={"IDENT": _ambiguous_literals},
        propagate_positions=True,
        maybe_placeholders=False,
        priority="invert",
        tree_class=lark.Tree,
        cache=cache,
    )


def _load() -> Any:
    cache = _cache_file(_grammar())
    if cache is None:
        return _build(False)
    if os.path.exists(cache):
        return _build(cache)  # lark rebuilds (and rewrites it) if it does not match
    partial = f"{cache}.{os.getpid()}.{threading.get_ident()}.tmp"
    built = _build(partial)
    with contextlib.suppress(OSError):  # e.g. another process renamed its copy first
        os.replace(partial, cache)
    return built


def parser() -> Any:
    """The CEL lark parser, shared with cel-python's ``CELParser`` when that is loaded."""
    global _parser
    with _lock:
        if _parser is None:
            _parser = _load()
        celparser = sys.modules.get("celpy.celparser")
        if celparser is not None and celparser.CELParser.CEL_PARSER is None:
            celparser.CELParser.CEL_PARSER = _parser
        return _parser
