"""In-place writes whose writers closed the files go live without the stability check (Linux).

The watcher counts inotify opens and closes of the bundle's files; a writer still holding
a file it wrote keeps the burst waiting, and where the count cannot be trusted (turned
off, a file opened before the watch, a queue overflow) the content check of #11 applies.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from policyd.engine import Engine
from policyd.reload import Watcher
from policyd.reload.opens import OpenFiles, file_system_type, is_network_fs

from .conftest import WAIT_S, revision, serving, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")

PII = {"messages": [{"role": "user", "content": "a@b.example"}]}


def _guarded(n: int) -> tuple[str, str]:
    """Revision ``n`` as a valid prefix and the rest, which adds a PII guardrail."""
    return revision(n), "guardrails:\n  input:\n    - {name: pii, pii: [email], action: block}\n"


@pytest.fixture
def engine(rev_dir: Path) -> Iterator[tuple[Engine, list[dict[str, Any]]]]:
    engine = Engine.from_path(rev_dir)
    events: list[dict[str, Any]] = []
    engine.on_event(events.append)
    yield engine, events
    engine.close()


def _watch(rev_dir: Path, engine: Engine, **options: Any) -> Watcher:
    watcher = Watcher(rev_dir, engine.reload, catch_up=False, **options)
    watcher.start()
    return watcher


def test_a_closed_in_place_write_skips_the_stability_check(
    rev_dir: Path, engine: tuple[Engine, list[dict[str, Any]]]
) -> None:
    serving_engine, events = engine
    # a 60 s stability check and a 10 min debounce: going live means neither applied
    watcher = _watch(rev_dir, serving_engine, debounce_ms=600_000, in_place_confirm_ms=60_000)
    try:
        assert watcher.opens == "tracking opens"
        (rev_dir / "p.yaml").write_text("".join(_guarded(1)))
        assert wait_for(lambda: serving(serving_engine) == 1)
        assert serving_engine.decide(PII).blocked_by == "pii"
        assert watcher.closed_bursts == 1 and not watcher.confirming.is_set()
        # the swap comes first, then the event (from the watcher thread): wait for it
        assert wait_for(lambda: [e["type"] for e in events] == ["reloaded"])
    finally:
        watcher.stop()


def test_a_writer_pausing_mid_file_with_the_file_open_is_held(
    rev_dir: Path, engine: tuple[Engine, list[dict[str, Any]]]
) -> None:
    """The content check alone (50 ms here) would take the stable prefix for the file."""
    serving_engine, events = engine
    watcher = _watch(rev_dir, serving_engine, debounce_ms=50, in_place_confirm_ms=50)
    try:
        prefix, rest = _guarded(1)
        with open(rev_dir / "p.yaml", "w", encoding="utf-8") as handle:
            handle.write(prefix)
            handle.flush()
            # the prefix was stable for the whole check, and is held: its writer has it open
            assert watcher.held_open.wait(WAIT_S)
            assert serving(serving_engine) == 0 and events == []
            handle.write(rest)
        assert wait_for(lambda: serving(serving_engine) == 1)
        assert serving_engine.decide(PII).blocked_by == "pii"  # the whole file went live
        # the swap comes first, then the event (from the watcher thread): wait for it
        assert wait_for(lambda: [e["type"] for e in events] == ["reloaded"])
    finally:
        watcher.stop()


def test_close_then_reopen_back_to_back_never_publishes_the_first_part(
    rev_dir: Path, engine: tuple[Engine, list[dict[str, Any]]]
) -> None:
    """`printf a > f; printf b >> f`: after the first close the file is a valid prefix.

    The shell opens the file again microseconds after closing it; the settle is 150 ms
    here (50 ms by default) so that a shared machine pausing the shell cannot matter."""
    serving_engine, events = engine
    watcher = _watch(rev_dir, serving_engine, debounce_ms=200, close_settle_ms=150)
    try:
        prefix, rest = _guarded(1)
        subprocess.run(
            'printf %s "$PREFIX" > p.yaml; printf %s "$REST" >> p.yaml',
            shell=True,
            check=True,
            cwd=rev_dir,
            env={**os.environ, "PREFIX": prefix, "REST": rest},
        )
        assert wait_for(lambda: serving(serving_engine) == 1)
        assert serving_engine.decide(PII).blocked_by == "pii"
        # the swap comes first, then the event (from the watcher thread): wait for it
        assert wait_for(lambda: [e["type"] for e in events] == ["reloaded"])
    finally:
        watcher.stop()


def test_a_reopened_file_held_open_waits_for_its_close(
    rev_dir: Path, engine: tuple[Engine, list[dict[str, Any]]]
) -> None:
    serving_engine, events = engine
    watcher = _watch(
        rev_dir, serving_engine, debounce_ms=200, close_settle_ms=150, in_place_confirm_ms=60_000
    )
    try:
        prefix, rest = _guarded(1)
        (rev_dir / "p.yaml").write_text(prefix)
        with open(rev_dir / "p.yaml", "a", encoding="utf-8") as handle:
            # open: not complete for its writers, so the burst is checked by content
            assert watcher.confirming.wait(WAIT_S)
            assert serving(serving_engine) == 0
            handle.write(rest)
        # closed: live without the 60 s content check
        assert wait_for(lambda: serving(serving_engine) == 1)
        assert serving_engine.decide(PII).blocked_by == "pii"
        # the swap comes first, then the event (from the watcher thread): wait for it
        assert wait_for(lambda: [e["type"] for e in events] == ["reloaded"])
        assert watcher.closed_bursts == 1
    finally:
        watcher.stop()


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_turned_off_the_content_check_still_holds_a_prefix(
    rev_dir: Path,
    engine: tuple[Engine, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    serving_engine, events = engine
    if how == "environment":
        monkeypatch.setenv("POLICYD_TRACK_OPENS", "0")
    options = {"track_opens": False} if how == "argument" else {}
    watcher = _watch(rev_dir, serving_engine, debounce_ms=50, in_place_confirm_ms=3000, **options)
    try:
        assert watcher.opens is not None and watcher.opens != "tracking opens"
        prefix, rest = _guarded(1)
        with open(rev_dir / "p.yaml", "w", encoding="utf-8") as handle:
            handle.write(prefix)
            handle.flush()
            assert watcher.confirming.wait(WAIT_S)
            assert serving(serving_engine) == 0
            handle.write(rest)
        assert wait_for(lambda: serving(serving_engine) == 1)
        assert serving_engine.decide(PII).blocked_by == "pii"
        # the swap comes first, then the event (from the watcher thread): wait for it
        assert wait_for(lambda: [e["type"] for e in events] == ["reloaded"])
        assert watcher.closed_bursts == 0 and not watcher.held_open.is_set()
    finally:
        watcher.stop()


# --- the account itself ----------------------------------------------------------------------


@pytest.fixture
def tracked(tmp_path: Path) -> Iterator[tuple[OpenFiles, Path]]:
    (tmp_path / "p.yaml").write_text("a: 1\n")
    tracker, why = OpenFiles.start([str(tmp_path)], True, lambda p: p.endswith(".yaml"))
    assert tracker is not None, why
    yield tracker, tmp_path / "p.yaml"
    tracker.close()


def test_reads_cancel_out_and_a_reader_holding_a_file_blocks(
    tracked: tuple[OpenFiles, Path],
) -> None:
    tracker, path = tracked
    path.read_text()
    path.write_text("a: 2\n")
    tracker.poll(1.0)
    assert tracker.closed([str(path)]) and not tracker.writing()
    assert tracker.last_write == 1.0
    with open(path, encoding="utf-8"):
        tracker.poll(2.0)
        assert not tracker.closed([str(path)]) and not tracker.writing()
    tracker.poll(3.0)
    assert tracker.closed([str(path)]) and tracker.last_write == 1.0  # a read is no write


def test_a_file_opened_before_the_watch_is_doubted(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    with open(path, "w", encoding="utf-8") as handle:
        tracker, _ = OpenFiles.start([str(tmp_path)], True, lambda p: p.endswith(".yaml"))
        assert tracker is not None
        try:
            handle.write("a: 1\n")
            handle.flush()
            tracker.poll(1.0)
            assert tracker.writing() and not tracker.closed([str(path)])  # no open was seen
            handle.close()
            tracker.poll(2.0)
            assert tracker.doubt is not None and not tracker.closed([str(path)])
            tracker.new_burst(3.0)
            assert tracker.closed([str(path)])
        finally:
            tracker.close()


def test_a_new_folder_and_a_deletion_are_doubted(tracked: tuple[OpenFiles, Path]) -> None:
    tracker, path = tracked
    (path.parent / "sub").mkdir()
    tracker.poll(1.0)
    assert tracker.doubt == "a folder appeared" and not tracker.closed([])
    tracker.new_burst(2.0)
    (path.parent / "sub" / "q.yaml").write_text("q: 1\n")  # the new folder is watched
    tracker.poll(3.0)
    assert tracker.closed([str(path.parent / "sub" / "q.yaml")]) and tracker.last_write == 3.0
    path.unlink()
    tracker.poll(4.0)
    assert tracker.doubt is not None and "deleted" in tracker.doubt


def test_a_written_file_outside_the_watches_is_not_vouched_for(
    tracked: tuple[OpenFiles, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    tracker, _ = tracked
    assert not tracker.closed([str(tmp_path_factory.mktemp("elsewhere") / "p.yaml")])


def test_a_queue_overflow_breaks_the_account(tracked: tuple[OpenFiles, Path]) -> None:
    tracker, path = tracked
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    for _ in range(limit // 2 + 1):  # an open and a close each, never read
        os.close(os.open(path, os.O_RDONLY))
    tracker.poll(1.0)
    assert tracker.broken is not None and not tracker.closed([])
    tracker.new_burst(2.0)
    path.write_text("a: 2\n")
    tracker.poll(3.0)
    assert not tracker.closed([str(path)]) and not tracker.writing()


OPS = st.lists(
    st.sampled_from(["open_writer", "write", "close_writer", "open_reader", "close_reader"])
    | st.sampled_from(["poll", "new_burst"]),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(OPS)
# the writer's and the reader's opens merge into one: the count is 0 while the writer writes
@example(["open_writer", "open_reader", "close_reader", "write", "poll"])
def test_closed_never_vouches_for_a_writer_mid_file(tmp_path_factory: Any, ops: list[str]) -> None:
    """One writer and any readers, polled at any moment (inotify merges unread twins): when
    the account says "closed", the writer is closed, or has written nothing since it
    opened the file (then the file holds what it held before)."""
    folder = tmp_path_factory.mktemp("opens")
    path = folder / "p.yaml"
    path.write_text("a: 0\n")
    tracker, _ = OpenFiles.start([str(folder)], True, lambda p: p.endswith(".yaml"))
    assert tracker is not None
    writer: int | None = None  # file descriptors: os.open, as a writer in C would
    wrote = False
    readers: list[int] = []
    try:
        for step, op in enumerate([*ops, "poll"]):
            if op == "open_writer" and writer is None:
                writer, wrote = os.open(path, os.O_RDWR), False
            elif op == "write" and writer is not None:
                os.write(writer, b"b: 1\n")
                wrote = True
            elif op == "close_writer" and writer is not None:
                os.close(writer)
                writer = None
            elif op == "open_reader":
                readers.append(os.open(path, os.O_RDONLY))
            elif op == "close_reader" and readers:
                os.close(readers.pop(0))
            elif op == "new_burst":
                tracker.new_burst(float(step))
            elif op == "poll":
                tracker.poll(float(step))
                if tracker.closed([str(path)]):
                    assert writer is None or not wrote, ops
    finally:
        for fd in [writer, *readers]:
            if fd is not None:
                os.close(fd)
        tracker.close()


def test_network_and_fuse_file_systems_are_not_tracked(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        "server:/export /mnt/with\\040space nfs4 rw 0 0\n"
        "sshfs#me@h: /mnt/remote fuse.sshfs rw 0 0\n"
    )
    assert file_system_type("/etc", str(mounts)) == "ext4"
    assert file_system_type("/mnt/with space/policies", str(mounts)) == "nfs4"
    assert file_system_type("/mnt/remote/p.yaml", str(mounts)) == "fuse.sshfs"
    assert file_system_type("/mnt/withspace", str(mounts)) == "ext4"
    assert [is_network_fs(k) for k in ("ext4", "nfs4", "fuse.sshfs", "tmpfs", None)] == [
        False,
        True,
        True,
        False,
        False,
    ]


def test_without_inotify_simple_opens_are_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dependency is Linux-only; a missing one is a fallback, never an error."""
    monkeypatch.setitem(sys.modules, "inotify_simple", None)  # import raises ImportError
    tracker, why = OpenFiles.start([str(tmp_path)], True, lambda p: True)
    assert tracker is None and "inotify_simple is not installed" in why
