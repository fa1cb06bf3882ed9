"""Loader: YAML files -> plain documents with a source map.

Owns reading a bundle (a file, or a directory read recursively in sorted order), decoding it
(UTF-8, BOM tolerated), the file-level checks (size, emptiness, unreadable paths) and the results
:class:`Document` / :class:`LoadResult`, through :func:`load_path` and :func:`load_text`.
Loading never raises for bad input: every problem becomes a
:class:`~policyd.diagnostics.Diagnostic` (codes PD001-PD011). Loading the same path again
(a hot reload) reuses what the last load of that path read from each file whose bytes did
not change: documents are never modified once read.

The YAML 1.2 core-schema reading itself is :mod:`policyd.yaml12`; positions are
:mod:`policyd.sourcemap`.  Their public names are re-exported here, so ``policyd.loader``
stays the one import for users of the loader.
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from policyd.diagnostics import Diagnostic, Severity, sort_diagnostics
from policyd.sourcemap import Lines, Position, SourceMap
from policyd.yaml12 import MAX_ALIAS_NODES, MAX_DEPTH, FileReader, YamlFloat, YamlInt

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "Document",
    "LoadResult",
    "Position",
    "SourceMap",
    "YamlFloat",
    "YamlInt",
    "forget_reads",
    "gc_paused",
    "load_path",
    "load_text",
]

MAX_FILE_BYTES = 10 * 1024 * 1024
YAML_SUFFIXES = (".yaml", ".yml")


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """One YAML document: plain data plus where each part of it was written."""

    file: str
    index: int
    data: Any
    source_map: SourceMap = field(repr=False, compare=False)


@dataclass(frozen=True)
class LoadResult:
    documents: list[Document]
    files: dict[str, str]
    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


# --- the cyclic garbage collector ------------------------------------------------------------

_gc_lock = threading.Lock()
_gc_depth = 0
_gc_resume = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a bundle is read (also a decorator).

    Reading builds hundreds of nodes and models per policy, none in a reference cycle, and
    every full collection walks all of them again: with the collector running, 1,000 policies
    cost ~60% more.  Reference counting still frees memory meanwhile; the collector resumes
    when the outermost pause ends (nested and concurrent pauses count), unless it was off.

    When it resumes, what was built meanwhile goes straight to the oldest generation
    (``gc.freeze()`` then ``gc.unfreeze()``, two list splices) instead of being walked by the
    next young collection, one more full walk of the bundle (~20% of reading it): a bundle
    lives until the next reload.  Young objects of other threads move with it, so a cycle
    among them waits for the next full collection.  Skipped when the application has frozen
    objects itself (``gc.freeze()`` before forking workers), which unfreezing would undo.
    """
    global _gc_depth, _gc_resume
    with _gc_lock:
        if _gc_depth == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_resume:
                if gc.get_freeze_count() == 0:
                    gc.freeze()
                    gc.unfreeze()  # into the oldest generation, not walked again now
                gc.enable()


# --- files and directories -----------------------------------------------------------------

_START = Position(1, 1)


def _diag(file: str, pos: Position, code: str, message: str, hint: str) -> Diagnostic:
    return Diagnostic(file, pos.line, pos.column, Severity.ERROR, code, message, hint)


def _display(path: str) -> str:
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute, os.getcwd())
    except ValueError:  # another drive on Windows
        return absolute
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return absolute
    return relative


def _decode(data: bytes, file: str, diagnostics: list[Diagnostic]) -> str | None:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")
        pos = Lines(before).position(len(before))
        utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        hint = "the file is UTF-16; " if utf16 else ""
        message = f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x} here)"
        diagnostics.append(_diag(file, pos, "PD004", message, hint + "save the file as UTF-8"))
        return None


def _load(
    text: str | bytes, file: str, files: dict[str, str]
) -> tuple[list[Document], list[Diagnostic]]:
    diagnostics: list[Diagnostic] = []
    if len(text) > MAX_FILE_BYTES:
        message = f"file is larger than the {MAX_FILE_BYTES // (1024 * 1024)} MB limit"
        hint = "split the bundle into smaller files"
        return [], [_diag(file, _START, "PD006", message, hint)]
    if isinstance(text, bytes):
        decoded = _decode(text, file, diagnostics)
        if decoded is None:
            files[file] = text.decode("utf-8", "replace")
            return [], diagnostics
        text = decoded
    text = text.removeprefix("\ufeff")
    files[file] = text
    reader = FileReader(file, text)
    reader.run()
    if not reader.nonempty and not reader.diagnostics:
        what = "is empty" if not text.strip() else "has no YAML document"
        hint = "a policy file needs a document; restore it if a sync truncated it, or delete it"
        reader.error(0, "PD005", f"file {what}", hint)
    documents = [Document(file, index, data, sm) for index, data, sm in reader.documents]
    return documents, reader.diagnostics


def load_text(text: str | bytes, file: str = "<string>") -> LoadResult:
    """Load YAML text (bytes must be UTF-8) as if it were the file ``file``."""
    files: dict[str, str] = {}
    documents, diagnostics = _load(text, file, files)
    return LoadResult(documents, files, sort_diagnostics(diagnostics))


def _walk(directory: str, seen_dirs: set[str], diagnostics: list[Diagnostic]) -> Iterator[str]:
    real = os.path.realpath(directory)
    if real in seen_dirs:
        return
    seen_dirs.add(real)
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        diagnostics.append(_unreadable(directory, exc))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue  # hidden; a ConfigMap's ..data is reached through its visible symlinks
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(entry.path, seen_dirs, diagnostics)
        elif entry.name.lower().endswith(YAML_SUFFIXES):
            yield entry.path


def _unreadable(path: str, exc: OSError) -> Diagnostic:
    hint = "check that the path exists and is readable by this user"
    return _diag(_display(path), _START, "PD011", f"cannot read: {exc.strerror or exc}", hint)


def _read(path: str) -> bytes:
    """The file's bytes; at most one byte over the limit, so an oversized file is reported."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(0, "not a regular file")
    with open(path, "rb") as handle:
        return handle.read(MAX_FILE_BYTES + 1)


# What the last load of each path read: (display name, bytes) -> (documents, diagnostics, text)
_Read = dict[tuple[str, bytes], tuple[list[Document], list[Diagnostic], str | None]]
_last_reads: dict[str, _Read] = {}
_last_reads_lock = threading.Lock()
_MAX_REMEMBERED_PATHS = 16


def forget_reads() -> None:
    """Forget what earlier loads read: the next :func:`load_path` of any path reads every
    file again, as the first load in a process does (benchmarks timing a cold read)."""
    with _last_reads_lock:
        _last_reads.clear()


def _load_file(
    data: bytes, file: str, files: dict[str, str], last: _Read, now: _Read
) -> tuple[list[Document], list[Diagnostic]]:
    """:func:`_load`, or what the last load of the same path read from the same bytes."""
    key = (file, data)
    hit = last.get(key)
    if hit is None:
        documents, diagnostics = _load(data, file, files)
        hit = (documents, diagnostics, files.get(file))
    elif hit[2] is not None:
        files[file] = hit[2]
    now[key] = hit
    return list(hit[0]), list(hit[1])


@gc_paused()
def load_path(path: str | os.PathLike[str]) -> LoadResult:
    """Load a YAML file, or every ``*.yaml``/``*.yml`` under a directory in sorted order."""
    root = os.fspath(path)
    diagnostics: list[Diagnostic] = []
    documents: list[Document] = []
    files: dict[str, str] = {}
    if not os.path.lexists(root):
        message = f"no such file or directory: {root}"
        hint = "check the path (it is relative to the current directory)"
        diagnostics.append(_diag(_display(root), _START, "PD011", message, hint))
        return LoadResult([], {}, diagnostics)
    if os.path.isdir(root):
        paths = list(_walk(root, set(), diagnostics))
        if not paths and not diagnostics:
            hint = "policy files end in .yaml or .yml; names starting with '.' are skipped"
            message = "directory has no YAML files"
            diagnostics.append(_diag(_display(root), _START, "PD010", message, hint))
    else:
        paths = [root]
    seen: set[str] = set()
    key = os.path.realpath(root)
    with _last_reads_lock:
        last = _last_reads.get(key, {})
    now: _Read = {}
    for file in paths:
        real = os.path.realpath(file)
        if real in seen:
            continue
        seen.add(real)
        try:
            data = _read(file)
        except OSError as exc:
            diagnostics.append(_unreadable(file, exc))
            continue
        docs, diags = _load_file(data, _display(file), files, last, now)
        documents.extend(docs)
        diagnostics.extend(diags)
    with _last_reads_lock:
        _last_reads.pop(key, None)
        while len(_last_reads) >= _MAX_REMEMBERED_PATHS:
            del _last_reads[next(iter(_last_reads))]  # the path loaded longest ago
        _last_reads[key] = now
    return LoadResult(documents, files, sort_diagnostics(diagnostics))
