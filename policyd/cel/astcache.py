"""Parsed CEL expressions, cached per user on disk: a warm ``policyd check`` never loads lark.

Owns :func:`get` and :func:`put`, which :func:`policyd.cel.syntax.parse` calls around the
lark parse. Importing lark, loading the parser tables and building its lexers cost a
start-up more than everything the parse itself does, and a pre-commit hook checks the same
expressions on every commit. Only expressions that parsed are cached: a syntax error is
reported by the parser itself, every time.

Every :func:`get` unpickles a fresh tree (the type checker annotates the nodes it visits).
The file sits next to the grammar's (``$XDG_CACHE_HOME/policyd``, else ``~/.cache/policyd``,
a directory only its user can write, since it is read with pickle); its name carries a
digest of the AST's module and of this one, so a changed AST never reads an old file. It is
read once per process and written at exit when something was added (under a temporary
name, then renamed). Past :data:`MAX_ENTRIES` expressions, the file keeps only those this
process used. ``POLICYD_NO_CACHE=1`` turns it off.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import pickle
import sys
import threading
from pathlib import Path
from typing import Any

from policyd.cel.grammar import cache_dir

__all__ = ["MAX_ENTRIES", "get", "put"]

MAX_ENTRIES = 2048
_MAX_FILE_BYTES = 16 * 1024 * 1024

_lock = threading.Lock()
_entries: dict[str, bytes] | None = None  # source -> pickled AST; None until read
_path: str | None = None
_dirty = False
_used: set[str] = set()  # sources looked up or added by this process


def _file() -> str | None:
    directory = cache_dir()
    if directory is None:
        return None
    h = hashlib.sha256(f"{sys.version_info[:2]}\0{pickle.HIGHEST_PROTOCOL}\0".encode())
    try:
        for module in ("syntax.py", "types.py", "astcache.py"):
            h.update((Path(__file__).with_name(module)).read_bytes())
    except OSError:  # e.g. installed in a zip: no way to tell the AST's version
        return None
    return os.path.join(directory, f"cel-ast-{h.hexdigest()[:16]}.cache")


def _read() -> dict[str, bytes]:
    """The cache's entries (read on first use); registers the write at exit."""
    global _entries, _path
    if _entries is None:
        _entries = {}
        _path = _file()
        if _path is not None:
            with contextlib.suppress(Exception):  # missing, truncated, foreign: start afresh
                if os.path.getsize(_path) <= _MAX_FILE_BYTES:
                    with open(_path, "rb") as handle:
                        loaded = pickle.load(handle)
                    if isinstance(loaded, dict):
                        _entries = loaded
            atexit.register(_write)
    return _entries


def get(source: str) -> Any:
    """A fresh AST of ``source`` if it was parsed before, else None."""
    with _lock:
        pickled = _read().get(source)
        if pickled is None:
            return None
        _used.add(source)
    try:
        return pickle.loads(pickled)
    except Exception:  # an unreadable entry: parse again
        return None


def put(source: str, tree: Any) -> None:
    """Remember the AST of ``source`` (before anything annotated it)."""
    global _dirty
    with _lock:
        entries = _read()
        if _path is None or source in entries:
            return
        try:
            entries[source] = pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, RecursionError, TypeError, AttributeError):
            return
        _used.add(source)
        _dirty = True


def _write() -> None:
    global _dirty
    with _lock:
        if not _dirty or _path is None or _entries is None:
            return
        entries = _entries
        if len(entries) > MAX_ENTRIES:  # keep what this process used (at most MAX_ENTRIES)
            kept = sorted(_used & entries.keys())[:MAX_ENTRIES]
            entries = {source: entries[source] for source in kept}
        partial = f"{_path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with contextlib.suppress(OSError):
            with open(partial, "wb") as handle:
                pickle.dump(entries, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(partial, _path)
            _dirty = False
        with contextlib.suppress(OSError):
            os.unlink(partial)
