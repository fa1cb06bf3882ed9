"""Who still has the bundle's files open: inotify open/close accounting (Linux only).

The watcher holds back a file written in place until its content is stable (#11), which
costs about 700 ms. On Linux, inotify also says when a file is opened (``IN_OPEN``) and
closed (``IN_CLOSE_WRITE``, ``IN_CLOSE_NOWRITE``): a burst whose written files have all
been closed, with nobody holding one of the bundle's files open, is complete as far as
its writers are concerned, and may go live after a short quiet. :class:`OpenFiles` keeps
that account, next to ``watchfiles`` (which still decides what changed); it is read in
the watcher's thread, whenever ``watchfiles`` hands over a batch or times out.

What it can say, and what makes it say "cannot tell" (the watcher then falls back to the
stability check):

- ``open_count`` per file: opens minus closes since the watch began. The watcher's own
  reads (digests, loads) open and close in its thread, between two polls, so they cancel
  out. A close with no open seen (the file was opened before the watch began, or before a
  rename over it) makes the burst doubtful; a reader holding a file open (``less``,
  ``tail -f``) just keeps the count above zero, so that burst is confirmed the slow way.
- ``writing``: files modified (or created) since their last close-for-writing: a writer
  that opened a file before the watch began and pauses mid-file is caught here, since
  its open was never seen. While any file is in that state, a stable digest is still
  held back (up to the burst's ``max_wait_s``).
- doubt: the event queue overflowed (``IN_Q_OVERFLOW``: the account is broken for the
  rest of the session), a folder appeared (files in it may have been opened before its
  watch existed), a file that counts was deleted or moved away, or a written file lies in
  a folder without a watch.

inotify merges an event into the one queued just before it when both are the same (same
file, same kind), so two opens in a row with nothing between them count once. A writer's
open merged with another opener's is still caught by ``writing`` as soon as it writes;
what is left is two processes writing the same file at once, one of them closing while the
other, whose open was merged, pauses mid-file without writing again: not a pattern a
policy file sees.

It is not used where it cannot see every opener: off Linux, without ``inotify_simple``,
on network and FUSE file systems (other machines' opens are invisible), when polling, or
when the watches cannot be created (the per-user watch limit).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable

log = logging.getLogger("policyd")

# File systems whose files other machines (or a FUSE daemon) may open behind our back.
NETWORK_FS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "afs"}
    | {"virtiofs", "vboxsf", "davfs", "gpfs", "beegfs", "ocfs2", "gfs2", "ncpfs"}
)
ENV_SWITCH = "POLICYD_TRACK_OPENS"  # "0", "false", "off": never track opens


def tracking_disabled() -> bool:
    """Whether the environment turns open tracking off."""
    value = os.environ.get(ENV_SWITCH, "").strip().lower()
    return value in ("0", "false", "off", "no", "disable", "disabled")


def _unescape_mount(field: str) -> str:
    """/proc/self/mounts writes a space as \\040, a tab as \\011, and so on."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def file_system_type(path: str, mounts: str = "/proc/self/mounts") -> str | None:
    """The type of the file system holding ``path`` (the longest mount point above it)."""
    real = os.path.realpath(path)
    best, kind = "", None
    try:
        with open(mounts, encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape_mount(fields[1])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def is_network_fs(kind: str | None) -> bool:
    return kind is not None and (kind in NETWORK_FS or kind.startswith("fuse"))


class OpenFiles:
    """The open/close account of the files that count under ``paths``.

    ``counts(path)`` says whether a file counts (the watcher's bundle filter);
    ``recursive`` watches every folder below ``paths`` (a directory bundle) rather than
    ``paths`` alone (a single-file bundle's folders). Create it with :meth:`start`.
    """

    def __init__(self, inotify: object, counts: Callable[[str], bool], recursive: bool) -> None:
        from inotify_simple import flags

        self._flags = flags
        self._inotify = inotify
        self._counts = counts
        self._recursive = recursive
        self._mask = (
            flags.OPEN
            | flags.CLOSE_WRITE
            | flags.CLOSE_NOWRITE
            | flags.MODIFY
            | flags.CREATE
            | flags.DELETE
            | flags.MOVED_FROM
            | flags.MOVED_TO
            | flags.DELETE_SELF
        )
        self._dirs: dict[int, tuple[str, str]] = {}  # wd -> (folder as watched, real path)
        self._real_dirs: set[str] = set()
        self._open: dict[str, int] = {}  # real path -> opens minus closes (never 0)
        self._writing: set[str] = set()  # real paths modified since their last close-write
        self.broken: str | None = None  # why the account cannot be trusted any more
        self.doubt: str | None = None  # why this burst cannot be trusted
        self.last_write = float("-inf")  # monotonic time of the poll that last read a write

    @classmethod
    def start(
        cls, paths: Iterable[str], recursive: bool, counts: Callable[[str], bool]
    ) -> tuple[OpenFiles | None, str]:
        """An account watching ``paths``, or None and why it cannot be kept here."""
        if not sys.platform.startswith("linux"):
            return None, f"no inotify on {sys.platform}"
        if tracking_disabled():
            return None, f"turned off by {ENV_SWITCH}"
        paths = list(paths)
        for path in paths:
            kind = file_system_type(path)
            if is_network_fs(kind):
                return None, f"{path} is on a {kind} file system"
        try:
            from inotify_simple import INotify
        except ImportError as exc:  # the Linux-only dependency is missing
            return None, f"inotify_simple is not installed ({exc})"
        try:
            inotify = INotify()
        except OSError as exc:  # e.g. the per-user instance limit
            return None, f"inotify: {exc}"
        tracker = cls(inotify, counts, recursive)
        try:
            for path in paths:
                tracker._watch_tree(path)
        except OSError as exc:  # e.g. ENOSPC: the per-user watch limit
            tracker.close()
            return None, f"inotify watch: {exc}"
        return tracker, "tracking opens"

    def close(self) -> None:
        self._inotify.close()  # type: ignore[attr-defined]

    def _watch_tree(self, top: str) -> None:
        folders = [top]
        if self._recursive:
            for folder, dirs, _ in os.walk(top, followlinks=True):
                dirs.sort()
                folders.extend(os.path.join(folder, d) for d in dirs)
        for folder in folders:
            wd = self._inotify.add_watch(folder, self._mask)  # type: ignore[attr-defined]
            real = os.path.realpath(folder)
            self._dirs.setdefault(wd, (folder, real))
            self._real_dirs.add(real)

    # -- reading events ---------------------------------------------------------------------

    def poll(self, now: float) -> None:
        """Read every queued event; ``now`` is when (a write seen now happened before it)."""
        if self.broken is not None:
            return
        flags = self._flags
        for wd, mask, _cookie, name in self._inotify.read(timeout=0):  # type: ignore[attr-defined]
            if mask & flags.Q_OVERFLOW:
                self.broken = self.doubt = "the inotify event queue overflowed"
                log.info(
                    "policyd: %s; in-place writes are confirmed by content from now on", self.broken
                )
                return
            where = self._dirs.get(wd)
            if where is None:
                continue
            if mask & (flags.DELETE_SELF | flags.IGNORED):
                self._dirs.pop(wd, None)
                self._real_dirs.discard(where[1])
                continue
            if mask & flags.ISDIR:
                if self._recursive and mask & (flags.CREATE | flags.MOVED_TO):
                    self.doubt, self.last_write = "a folder appeared", now
                    try:
                        self._watch_tree(os.path.join(where[0], name))
                    except OSError as exc:
                        self.broken = self.doubt = f"inotify watch: {exc}"
                        return
                continue
            if not name or not self._counts(os.path.join(where[0], name)):
                continue  # the folder itself, or a scratch file
            self._file_event(os.path.join(where[1], name), mask, now)

    def _file_event(self, key: str, mask: int, now: float) -> None:
        flags = self._flags
        if mask & flags.OPEN:
            self._open[key] = self._open.get(key, 0) + 1
        if mask & (flags.MODIFY | flags.CREATE):
            if not (mask & flags.CREATE and os.path.islink(key)):
                self._writing.add(key)
            self.last_write = now
        if mask & (flags.CLOSE_WRITE | flags.CLOSE_NOWRITE):
            left = self._open.get(key, 0) - 1
            if left < 0:
                self.doubt = f"{key} was closed but its open was not seen"
                left = 0
            if left:
                self._open[key] = left
            else:
                self._open.pop(key, None)
        if mask & flags.CLOSE_WRITE:
            self._writing.discard(key)
            self.last_write = now
        if mask & (flags.DELETE | flags.MOVED_FROM):
            self.doubt, self.last_write = f"{key} was deleted or moved away", now
            self._open.pop(key, None)
            self._writing.discard(key)
        if mask & flags.MOVED_TO:  # renamed over: the old file's openers are not this one's
            self.last_write = now
            self._open.pop(key, None)
            self._writing.discard(key)

    # -- what the watcher asks --------------------------------------------------------------

    def writing(self) -> bool:
        """A file that counts was written and not closed since (its writer may be mid-file)."""
        return self.broken is None and bool(self._writing)

    def closed(self, written: Iterable[str]) -> bool:
        """The burst's ``written`` files were all closed, no file that counts is open, and
        the account can be trusted for this burst."""
        if self.broken is not None or self.doubt is not None or self._open or self._writing:
            return False
        return all(os.path.dirname(os.path.realpath(p)) in self._real_dirs for p in written)

    def new_burst(self, now: float) -> None:
        """A burst went live: its doubt is over, unless this poll read a write that belongs
        to the next burst (then the next burst keeps it, to be safe)."""
        if self.broken is None and self.last_write < now:
            self.doubt = None
