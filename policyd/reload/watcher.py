"""The file watcher: a ``watchfiles`` loop in a daemon thread that reports settled bursts.

Owns which file system changes count (:class:`BundleFilter`: YAML, prompt files, ConfigMap
``..data`` flips and directories, never editors' scratch files), debouncing (short for
renames, which publish complete files, and for in-place writes whose writers have all
closed the files, per :mod:`policyd.reload.opens`), holding back files written in place
until their content is stable, and staying attached when the bundle directory is replaced
or a symlink leading to it flips.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from policyd.reload.opens import OpenFiles

if TYPE_CHECKING:
    from watchfiles import Change

log = logging.getLogger("policyd")

YAML_SUFFIXES = (".yaml", ".yml")
# Prompt files may have any name; these are watched even before a policy refers to them.
TEXT_SUFFIXES = (".md", ".txt", ".j2", ".jinja", ".jinja2", ".tmpl", ".tpl", ".prompt", ".hbs")
# Editors' and sync tools' scratch files (vim, emacs, JetBrains, gedit, rsync, curl...).
TEMP_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".temp", ".part", ".bak", ".orig")
TEMP_NAMES = frozenset({"4913"})  # vim's "can I write here" probe
TEMP_INFIXES = ("___jb_tmp___", "___jb_old___", ".goutputstream-")
POLL_SETTLE_S = 1.2  # polling: mtimes are whole seconds, the first snapshot comes late
# A burst that wrote a file in place (not an atomic rename) is reloaded only when the
# bundle's content digest is the same at the end of the debounce and this long after it
# (at least debounce_ms), so that a writer pausing mid-file does not publish its prefix.
IN_PLACE_CONFIRM_MS = 500
# A burst of renames (temp file renamed over the old one, ConfigMap ``..data`` flips)
# publishes complete files: it settles after this much quiet (at most debounce_ms).
RENAME_SETTLE_MS = 10
# A burst written in place whose files have all been closed by their writers, with nobody
# holding one open (Linux: inotify's open/close events), settles after this much quiet
# since the last close (at most debounce_ms) instead of the debounce and the stability
# check: a writer that closes and reopens the file within it never exposes the state
# in between.
CLOSE_SETTLE_MS = 50
_HASH_WHOLE_BYTES = 32 * 1024 * 1024  # larger files are digested by size and mtime


# --- which changes count ---------------------------------------------------------------------


def is_scratch_name(name: str) -> bool:
    """True for editor and sync-tool temporary files, which never trigger a reload."""
    if name in TEMP_NAMES or name.endswith(TEMP_SUFFIXES):
        return True
    if name.startswith((".#", "#")) or any(i in name for i in TEMP_INFIXES):
        return True
    return name.startswith(".") and not name.startswith("..")  # hidden, but not ConfigMap's ..x


class BundleFilter:
    """``watchfiles`` filter: YAML, prompt files, ConfigMap ``..data`` flips, directories.

    ``root`` is the bundle (a directory, or one file whose parent is watched).
    ``prompt_files`` are the absolute paths of prompt files the serving revision reads.
    """

    def __init__(self, root: str, is_dir: bool, prompt_files: Iterable[str] = ()) -> None:
        self.root = os.path.abspath(root)
        self.is_dir = is_dir
        self.base = self.root if is_dir else os.path.dirname(self.root)
        self.prompt_files = frozenset(os.path.abspath(p) for p in prompt_files)

    def __call__(self, change: Change, path: str) -> bool:
        path = os.path.abspath(path)
        if path == self.root or path in self.prompt_files:
            return True
        relative = os.path.relpath(path, self.base)
        if relative == os.pardir or relative.startswith(os.pardir + os.sep):
            return False  # outside the bundle (not the same as ConfigMap's ..data)
        parts = relative.split(os.sep)
        name = parts[-1]
        if any(p.startswith("..") for p in parts):  # ConfigMap: ..data, ..2026_11_24_...
            return not is_scratch_name(name.lstrip("."))
        if not self.is_dir:
            return False  # a single-file bundle: only its own file, prompts and ..data count
        if any(is_scratch_name(p) for p in parts):
            return False
        if name.lower().endswith(YAML_SUFFIXES + TEXT_SUFFIXES):
            return True
        # A directory moved in or out (no suffix); deleted ones cannot be stat()ed any more.
        return "." not in name and (change.name == "deleted" or os.path.isdir(path))


# --- the watcher -----------------------------------------------------------------------------


class _Modified:
    """What BundleFilter is asked about files found while digesting the bundle."""

    name = "modified"


def _digest_file(h: hashlib._Hash, path: str) -> None:
    h.update(path.encode("utf-8", "surrogateescape") + b"\0")
    try:
        st = os.stat(path)
        if not os.path.isfile(path):
            h.update(b"not a file\0")
        elif st.st_size > _HASH_WHOLE_BYTES:
            h.update(f"{st.st_size}:{st.st_mtime_ns}\0".encode())
        else:
            with open(path, "rb") as handle:
                h.update(handle.read())
    except OSError as exc:
        h.update(f"unreadable {exc.errno}\0".encode())


def content_digest(path: str, bundle_filter: BundleFilter) -> str:
    """Digest of every file under the bundle that counts (the YAML, the prompt files)."""
    h = hashlib.sha256()
    files = set(bundle_filter.prompt_files)
    if os.path.isdir(path):
        for folder, dirs, names in os.walk(path, followlinks=True):
            dirs.sort()
            files.update(
                full
                for full in (os.path.join(folder, n) for n in names)
                if bundle_filter(_Modified(), full)  # type: ignore[arg-type]
            )
    else:
        files.add(os.path.abspath(path))
    for file in sorted(files):
        _digest_file(h, file)
    return h.hexdigest()


def _classify(batch: Iterable[tuple[Change, str]], counts: BundleFilter) -> tuple[set[str], bool]:
    """(files written in place, renamed) for one batch of changes from watchfiles.

    watchfiles reports a rename as the old name ``deleted`` and the new one ``added`` in the
    same batch (the old name is often a scratch file that does not count), and a file
    created by ``open(..., "w")`` as ``added`` alone, even when it was written to since: so
    an ``added`` regular file with no ``deleted`` beside it may be a writer's prefix.
    """
    deleted = any(change.name == "deleted" for change, _ in batch)
    written: set[str] = set()
    renamed = False
    for change, path in batch:
        if not counts(change, path):
            continue
        if change.name == "modified":
            written.add(path)
        elif change.name == "added" and deleted:
            renamed = True
        elif change.name == "added" and os.path.isfile(path) and not os.path.islink(path):
            written.add(path)  # created and maybe still being written
    return written, renamed


def _burst_kind(batch: Iterable[tuple[Change, str]], counts: BundleFilter) -> tuple[bool, bool]:
    """(wrote in place, renamed) for one batch of changes from watchfiles (:func:`_classify`)."""
    written, renamed = _classify(batch, counts)
    return bool(written), renamed


class _StopFlag:
    """``stop_event`` for watchfiles: also tells us when the OS watches are in place.

    watchfiles polls ``is_set()`` every ``step`` ms from inside its wait loop, which it
    only enters once the watches exist, so the first call means "watching now".
    """

    def __init__(self, stop: threading.Event, ready: threading.Event) -> None:
        self.stop = stop
        self.ready = ready
        self.restart = False

    def is_set(self) -> bool:
        self.ready.set()
        return self.restart or self.stop.is_set()


@dataclass(frozen=True)
class _Plan:
    paths: tuple[str, ...]
    recursive: bool
    filter: BundleFilter
    identity: tuple[str, int, int] | None


def _polling(force_polling: bool | None) -> bool:
    """Whether watchfiles will poll (it also does when WATCHFILES_FORCE_POLLING is set)."""
    if force_polling is not None:
        return force_polling
    value = os.environ.get("WATCHFILES_FORCE_POLLING", "")
    return bool(value) and value.lower() not in ("false", "disable", "disabled")


def _identity(path: str) -> tuple[str, int, int] | None:
    """Where ``path`` leads now; changes when the bundle directory is replaced or re-linked."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return None
    return real, st.st_dev, st.st_ino


class Watcher:
    """Calls ``on_change()`` after each settled burst of changes to the bundle at ``path``.

    A burst settles when no relevant change arrived for ``debounce_ms`` (or ``max_wait_s``
    passed since its first change); a burst of renames only (complete files renamed into
    place, symlink flips) after ``rename_settle_ms`` (at most ``debounce_ms``). A burst
    that wrote a file in place also waits until the bundle's content is the same at the
    end of the debounce and ``in_place_confirm_ms`` later, and (Linux) while a writer has
    a file open mid-write, up to ``max_wait_s``; unless every file it wrote was closed by
    its writer and no file that counts is open: then it settles ``close_settle_ms`` (at
    most ``debounce_ms``) after the last close (``track_opens=False`` or the environment
    variable ``POLICYD_TRACK_OPENS=0`` turns that off; see :mod:`policyd.reload.opens`
    for where it is off anyway). ``on_change`` runs in the watcher
    thread; its errors are logged and never stop the watcher. ``prompt_paths`` gives the
    prompt files to watch too (asked again after every change). If the bundle directory is
    replaced or a symlink leading to it flips, the watcher re-attaches and reloads. With
    ``catch_up`` it also calls ``on_change()`` once the watches are in place, for changes
    made while starting.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_change: Callable[[], object],
        *,
        debounce_ms: int = 200,
        max_wait_s: float = 5.0,
        prompt_paths: Callable[[], Iterable[str]] | None = None,
        force_polling: bool | None = None,
        catch_up: bool = True,
        in_place_confirm_ms: int = IN_PLACE_CONFIRM_MS,
        rename_settle_ms: int = RENAME_SETTLE_MS,
        close_settle_ms: int = CLOSE_SETTLE_MS,
        track_opens: bool = True,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.on_change = on_change
        self.debounce_s = max(0, debounce_ms) / 1000
        self.max_wait_s = max(max_wait_s, self.debounce_s)
        self.prompt_paths = prompt_paths or (lambda: ())
        self.force_polling = force_polling
        self.catch_up = catch_up
        self.confirm_s = max(self.debounce_s, max(0, in_place_confirm_ms) / 1000)
        rename_ms = max(0, min(rename_settle_ms, debounce_ms))
        close_ms = max(0, min(close_settle_ms, debounce_ms))
        self.track_opens = track_opens
        # watchfiles hands over a batch after ``step`` ms without events and checks the stop
        # flag every ``step``; with nothing to report it returns after ``tick`` ms, when we
        # look at the clock (quiet long enough?) and at the bundle's identity. A batch is
        # handed over after ``step`` ms of quiet, so a burst of renames settles on arrival.
        self.step_ms = max(10, min(50, rename_ms))
        self.rename_s = max(rename_ms, self.step_ms) / 1000
        self.tick_ms = max(self.step_ms, min(debounce_ms - self.step_ms, 1000))
        # Closes are not watchfiles events: while opens are tracked, look every close_ms.
        self.close_s = max(close_ms, self.step_ms) / 1000
        self.close_tick_ms = max(self.step_ms, min(self.tick_ms, close_ms))
        self.bursts = 0
        self.unstable = 0  # in-place writes still changing when their stability was checked
        self.confirming = threading.Event()  # set while an in-place write is being confirmed
        # set while a stable in-place write is held back because a file is still being
        # written (modified and not closed since)
        self.held_open = threading.Event()
        self.closed_bursts = 0  # bursts that went live as closed files (no stability check)
        self.opens: str | None = None  # this session: "tracking opens", or why not
        self.error: str | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread; return once the file system watches are in place."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="policyd-watch", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            log.warning("policyd: watcher for %s not ready after %.0f s", self.path, timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop watching; returns within about ``step`` ms (at most ``timeout``)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the thread -------------------------------------------------------------------------

    def _plan(self) -> _Plan | None:
        identity = _identity(self.path)
        if identity is None:
            return None
        is_dir = os.path.isdir(self.path)
        try:
            prompts = tuple(self.prompt_paths())
        except Exception:
            log.exception("policyd: listing prompt files of %s failed", self.path)
            prompts = ()
        if is_dir:
            paths: tuple[str, ...] = (self.path,)
        else:  # watch the parent (atomic renames, ..data) and the prompt files' folders
            dirs = {os.path.dirname(self.path)} | {os.path.dirname(p) for p in prompts}
            paths = tuple(sorted(d for d in dirs if os.path.isdir(d)))
        return _Plan(paths, is_dir, BundleFilter(self.path, is_dir, prompts), identity)

    def _run(self) -> None:
        catch_up = self.catch_up
        while not self._stop.is_set():
            plan = self._plan()
            if plan is None:  # the bundle is gone: wait for it to come back
                self._ready.set()
                self._stop.wait(self.tick_ms / 1000)
                catch_up = True
                continue
            try:
                catch_up = self._watch(plan, catch_up)
            except Exception as exc:  # e.g. inotify limits: say why, poll, keep trying
                self.error = f"{type(exc).__name__}: {exc}"
                log.error("policyd: watching %s failed: %s", self.path, self.error)
                if self.force_polling is None:
                    log.warning("policyd: watching %s by polling from now on", self.path)
                    self.force_polling = True
                self._ready.set()
                self._stop.wait(1.0)
                catch_up = True
            else:
                self.error = None

    def _open_files(self, plan: _Plan, polling: bool) -> OpenFiles | None:
        """The open/close account for this session, or None (then ``self.opens`` says why)."""
        if not self.track_opens or polling:
            self.opens = "polling" if self.track_opens else "turned off"
            return None
        tracker, self.opens = OpenFiles.start(
            plan.paths,
            plan.recursive,
            lambda path: plan.filter(_Modified(), path),  # type: ignore[arg-type]
        )
        if tracker is None:
            log.info(
                "policyd: in-place writes to %s are confirmed by content: %s", self.path, self.opens
            )
        return tracker

    def _watch(self, plan: _Plan, catch_up: bool) -> bool:
        """One watchfiles session; returns True when it ended to re-attach (then reload)."""
        polling = _polling(self.force_polling)
        opens = self._open_files(plan, polling)
        try:
            return self._session(plan, catch_up, polling, opens)
        finally:
            if opens is not None:
                opens.close()

    def _session(self, plan: _Plan, catch_up: bool, polling: bool, opens: OpenFiles | None) -> bool:
        import watchfiles

        flag = _StopFlag(self._stop, self._ready)
        pending = catch_up
        first = last = time.monotonic()
        # Polling (no inotify) sees a file's mtime in whole seconds and takes its first
        # snapshot a while after starting: hold the catch-up until that snapshot exists, and
        # check once more a second after each reload, for writes in the same second.
        hold_until = first + (POLL_SETTLE_S if polling else 0.0)
        again_at: float | None = None
        # An in-place write seen in this burst: (digest at the end of the debounce, when to
        # compare it again), or None while the burst has not settled yet.
        in_place = False
        written: set[str] = set()  # the files it wrote in place
        check: tuple[str, float] | None = None
        renamed = False  # the burst renamed files into place (and wrote none in place)
        for batch in watchfiles.watch(
            *plan.paths,
            # deletions that do not count (a rename's scratch file) tell renames apart
            watch_filter=lambda change, path: change.name == "deleted" or plan.filter(change, path),
            stop_event=flag,
            debounce=max(self.step_ms, int(self.max_wait_s * 1000)),
            step=self.step_ms,
            rust_timeout=self.tick_ms if opens is None else self.close_tick_ms,
            yield_on_timeout=True,
            raise_interrupt=False,
            recursive=plan.recursive,
            force_polling=self.force_polling,
        ):
            now = time.monotonic()
            if opens is not None:
                opens.poll(now)
            if any(plan.filter(c, p) for c, p in batch):
                log.debug("policyd: changes under %s: %s", self.path, sorted(p for _, p in batch))
                if not pending:
                    first, renamed = now, False
                pending, last = True, now - self.step_ms / 1000  # quiet since, per watchfiles
                wrote, moved = _classify(batch, plan.filter)
                written |= wrote
                in_place, renamed = in_place or bool(wrote), renamed or moved
                check = None  # still being written: the stability check starts over
                self.held_open.clear()
            if _identity(self.path) != plan.identity:
                return True
            # Every file written in place was closed by its writer, nobody has one open, and
            # nothing was written for close_s: complete as far as its writers are concerned.
            closed = (
                in_place
                and opens is not None
                and opens.closed(written)
                and now - max(last, opens.last_write) >= self.close_s - 1e-6
            )
            if closed:
                quiet = self.close_s
            else:
                quiet = self.rename_s if renamed and not in_place else self.debounce_s
            # (1 us of slack: ``last`` is ``now - step``, and floats do not always give back step)
            settled = now - last >= quiet - 1e-6 or now - first >= self.max_wait_s
            # a stable write whose writer has not closed the file yet: a pause mid-file
            held = opens is not None and opens.writing() and now - first < self.max_wait_s
            if pending and settled and now >= hold_until and in_place and not closed:
                if held and self.held_open.is_set():
                    continue
                if check is None or now >= check[1]:
                    digest = content_digest(self.path, plan.filter)
                    if check is None or digest != check[0]:
                        if check is not None:
                            self.unstable += 1
                            log.info("policyd: %s is still being written; waiting", self.path)
                        check = (digest, now + self.confirm_s)
                        self.confirming.set()
                        continue
                    if held:
                        log.info("policyd: %s is open mid-write; waiting", self.path)
                        self.held_open.set()
                        continue
                else:
                    continue
            if pending and settled and now >= hold_until:
                self.closed_bursts += closed
                pending, in_place, check = False, False, None
                written = set()
                self.confirming.clear()
                self.held_open.clear()
                if opens is not None:
                    opens.new_burst(now)
                again_at = now + POLL_SETTLE_S if polling else None
            elif again_at is not None and now >= again_at:
                again_at = None
            else:
                continue
            self._fire()
            fresh = self._plan()
            if fresh is None or (fresh.paths, fresh.identity) != (plan.paths, plan.identity):
                flag.restart = True  # new folders to watch: re-attach, then catch up
            else:
                plan.filter.prompt_files = fresh.filter.prompt_files
        return flag.restart

    def _fire(self) -> None:
        self.bursts += 1
        try:
            self.on_change()
        except Exception:
            log.exception("policyd: reload after a change to %s failed", self.path)
