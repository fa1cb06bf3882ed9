"""The real watcher (inotify via watchfiles) on real files in a temporary directory."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from policyd.engine import Engine

from .conftest import (
    REQUEST,
    WAIT_S,
    caught_up,
    revision,
    revision_of,
    serving,
    wait_for,
    write_atomically,
)


def test_edit_in_place_goes_live(watched: Engine, rev_dir: Path) -> None:
    assert watched.status().watching
    (rev_dir / "p.yaml").write_text(revision(1))
    assert wait_for(lambda: serving(watched) == 1)
    assert revision_of(watched.decide(REQUEST).to_dict()) == 1


def test_atomic_rename_goes_live(watched: Engine, rev_dir: Path) -> None:
    scratch = rev_dir / ".p.yaml.tmp-1234"
    scratch.write_text(revision(2))
    os.replace(scratch, rev_dir / "p.yaml")
    assert wait_for(lambda: serving(watched) == 2)


def test_deleted_then_recreated_file(watched: Engine, rev_dir: Path) -> None:
    (rev_dir / "p.yaml").unlink()
    # Past the debounce, the empty bundle is loaded and rejected; the last good one serves.
    assert wait_for(lambda: watched.status().rejected == 1)
    assert serving(watched) == 0
    assert revision_of(watched.decide(REQUEST).to_dict()) == 0
    (rev_dir / "p.yaml").write_text(revision(3))
    assert wait_for(lambda: serving(watched) == 3)
    assert watched.status().rejected_revision is None


def test_broken_revision_then_fix(watched: Engine, rev_dir: Path) -> None:
    events: list[dict[str, Any]] = []
    watched.on_event(events.append)
    # atomic writes: a truncate-then-write can be loaded empty, an extra rejection
    write_atomically(rev_dir / "p.yaml", revision(1, broken=True))
    assert wait_for(lambda: watched.status().rejected == 1)
    assert serving(watched) == 0
    assert [d.code for d in watched.status().last_error] == ["PD001"]
    # the event is emitted right after the status changes, on the watcher's thread
    assert wait_for(lambda: [e["type"] for e in events] == ["reload_rejected"])

    write_atomically(rev_dir / "p.yaml", revision(4))
    assert wait_for(lambda: serving(watched) == 4)
    assert wait_for(lambda: [e["type"] for e in events][:2] == ["reload_rejected", "reloaded"])


def test_a_burst_of_50_writes_is_one_or_two_reloads(rev_dir: Path) -> None:
    engine = Engine.from_path(rev_dir)
    engine.start_watching(debounce_ms=200)
    try:
        caught_up(engine)
        for n in range(1, 51):
            (rev_dir / "p.yaml").write_text(revision(n))
            time.sleep(0.002)
        assert wait_for(lambda: serving(engine) == 50)
        time.sleep(0.4)  # anything still pending would fire by now
        status = engine.status()
        assert 1 <= status.reloads <= 3, status
        assert status.rejected_revision is None
    finally:
        engine.close()


def test_configmap_symlink_swap(tmp_path: Path) -> None:
    """Kubernetes ConfigMap volumes: files link through ..data, flipped by one rename."""
    mount = tmp_path / "config"
    mount.mkdir()
    (mount / "..2026_11_24_12_00_00.1").mkdir()
    (mount / "..2026_11_24_12_00_00.1" / "p.yaml").write_text(revision(0))
    os.symlink("..2026_11_24_12_00_00.1", mount / "..data")
    os.symlink("..data/p.yaml", mount / "p.yaml")
    engine = Engine.from_path(mount)
    engine.start_watching(debounce_ms=50)
    try:
        caught_up(engine)
        assert serving(engine) == 0
        new = mount / "..2026_11_24_12_05_00.2"
        new.mkdir()
        (new / "p.yaml").write_text(revision(5))
        os.symlink(new.name, mount / "..data_tmp")
        os.replace(mount / "..data_tmp", mount / "..data")
        shutil.rmtree(mount / "..2026_11_24_12_00_00.1")
        assert wait_for(lambda: serving(engine) == 5)
        assert engine.status().rejected == 0
    finally:
        engine.close()


def test_editor_scratch_files_do_not_trigger_a_reload(rev_dir: Path) -> None:
    calls: list[float] = []
    from policyd.reload import Watcher

    watcher = Watcher(
        rev_dir, lambda: calls.append(time.monotonic()), debounce_ms=20, catch_up=False
    )
    watcher.start()
    try:
        for name in (".p.yaml.swp", "p.yaml~", "4913", ".#p.yaml", "#p.yaml#", "notes.log"):
            (rev_dir / name).write_text("scratch")
        (rev_dir / "4913").unlink()
        time.sleep(0.5)
        assert calls == []
        (rev_dir / "other.yaml").write_text("# a policy file\n")
        assert wait_for(lambda: len(calls) == 1)
    finally:
        watcher.stop()


def test_rewriting_identical_content_is_no_new_revision(watched: Engine, rev_dir: Path) -> None:
    watcher = watched._watcher
    assert watcher is not None
    bursts = watcher.bursts
    (rev_dir / "p.yaml").write_text(revision(0))
    assert wait_for(lambda: watcher.bursts > bursts)
    assert watched.status().reloads == 0


def test_single_file_bundle_ignores_its_neighbours(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(revision(0))
    engine = Engine.from_path(policy)
    engine.start_watching(debounce_ms=50)
    try:
        watcher = caught_up(engine)._watcher
        assert watcher is not None
        bursts = watcher.bursts
        (tmp_path / "unrelated.yaml").write_text(revision(9))
        time.sleep(0.4)
        assert watcher.bursts == bursts and serving(engine) == 0
        scratch = tmp_path / "p.yaml.new"
        scratch.write_text(revision(6))
        os.replace(scratch, policy)
        assert wait_for(lambda: serving(engine) == 6)
    finally:
        engine.close()


def test_replaced_bundle_directory_is_followed(watched: Engine, rev_dir: Path) -> None:
    staged = rev_dir.parent / "staged"
    staged.mkdir()
    (staged / "p.yaml").write_text(revision(8))
    os.rename(rev_dir, rev_dir.parent / "old")
    os.rename(staged, rev_dir)
    assert wait_for(lambda: serving(watched) == 8)
    (rev_dir / "p.yaml").write_text(revision(9))  # and the new directory is watched
    assert wait_for(lambda: serving(watched) == 9)


def test_flipped_symlink_to_the_bundle_is_followed(tmp_path: Path) -> None:
    """git-sync style: the app reads ``current``, a symlink flipped to each new checkout."""
    for n in (0, 1):
        (tmp_path / f"rev{n}").mkdir()
        (tmp_path / f"rev{n}" / "p.yaml").write_text(revision(n))
    os.symlink("rev0", tmp_path / "current")
    engine = Engine.from_path(tmp_path / "current")
    engine.start_watching(debounce_ms=50)
    try:
        caught_up(engine)
        os.symlink("rev1", tmp_path / "next")
        os.replace(tmp_path / "next", tmp_path / "current")
        assert wait_for(lambda: serving(engine) == 1)
        (tmp_path / "current" / "p.yaml").write_text(revision(2))  # edits behind the link
        assert wait_for(lambda: serving(engine) == 2)
    finally:
        engine.close()


def test_a_prompt_file_edit_goes_live(bundle_dir: Path) -> None:
    engine = Engine.from_path(bundle_dir, watch=True)
    try:
        caught_up(engine)
        before = engine.policy_ref("support-bot").digest
        prompt = bundle_dir / "prompts" / "support-system" / "v3.md"
        prompt.write_text("Edited prompt.\n")
        assert wait_for(lambda: engine.policy_ref("support-bot").digest != before)
    finally:
        engine.close()


def test_close_stops_the_watcher_promptly(rev_dir: Path) -> None:
    with Engine.from_path(rev_dir, watch=True) as engine:
        watcher = engine._watcher
        assert watcher is not None and watcher.running
        names = {t.name for t in threading.enumerate()}
        assert "policyd-watch" in names
    # Leaving the block joined the thread (stop() waits at most 2 s): it is gone now.
    assert not watcher.running and not engine.status().watching
    (rev_dir / "p.yaml").write_text(revision(1))
    time.sleep(0.3)
    assert serving(engine) == 0


async def test_start_watching_in_an_asyncio_app(rev_dir: Path) -> None:
    import asyncio

    engine = Engine.from_path(rev_dir)
    await engine.astart_watching(debounce_ms=50)
    try:
        await asyncio.to_thread(caught_up, engine)
        assert engine.status().watching
        (rev_dir / "p.yaml").write_text(revision(3))
        for _ in range(1000):
            if serving(engine) == 3:
                break
            await asyncio.sleep(0.01)
        assert revision_of((await engine.adecide(REQUEST)).to_dict()) == 3
    finally:
        engine.stop_watching()
        engine.close()


def test_decisions_from_four_threads_while_the_watcher_reloads(
    watched: Engine, rev_dir: Path
) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []
    counts = [0] * 4

    def decide_loop(index: int) -> None:
        try:
            while not stop.is_set():
                revision_of(watched.decide(REQUEST).to_dict())
                counts[index] += 1
                time.sleep(0.0005)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=decide_loop, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        for n in range(1, 11):
            (rev_dir / "p.yaml").write_text(revision(n))
            assert wait_for(lambda n=n: serving(watched) == n)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert errors == [] and all(counts)
    assert watched.status().reloads == 10


def test_polling_mode_also_works(rev_dir: Path) -> None:
    """Where inotify is unavailable (some network file systems), the watcher polls."""
    engine = Engine.from_path(rev_dir)
    engine.start_watching(debounce_ms=50, force_polling=True)
    try:
        caught_up(engine)
        (rev_dir / "p.yaml").write_text(revision(2))
        assert wait_for(lambda: serving(engine) == 2)
        # Polling sees whole-second mtimes: a second write in the same second (same size)
        # is caught by the check the watcher makes a second after each reload.
        (rev_dir / "p.yaml").write_text(revision(3))
        assert wait_for(lambda: serving(engine) == 3)
    finally:
        engine.close()


def _guarded(n: int) -> tuple[str, str]:
    """Revision ``n`` as a valid prefix and the rest, which adds a PII guardrail."""
    prefix = revision(n)
    rest = "guardrails:\n  input:\n    - {name: pii, pii: [email], action: block}\n"
    return prefix, rest


def test_a_slow_in_place_write_never_goes_live_as_its_prefix(rev_dir: Path) -> None:
    """#11: a valid prefix, a pause, then the rest: only the whole file may go live."""
    from policyd.reload import Watcher

    engine = Engine.from_path(rev_dir)
    events: list[dict[str, Any]] = []
    engine.on_event(events.append)
    # The stability interval is generous, so the test does not depend on the machine's
    # speed: the rest is written as soon as the watcher has taken the prefix's digest.
    watcher = Watcher(
        rev_dir, engine.reload, debounce_ms=50, in_place_confirm_ms=3000, catch_up=False
    )
    watcher.start()
    try:
        prefix, rest = _guarded(1)
        with open(rev_dir / "p.yaml", "w", encoding="utf-8") as handle:
            handle.write(prefix)
            handle.flush()
            # The burst settled and the watcher is holding the prefix back, not serving it.
            assert watcher.confirming.wait(WAIT_S)
            assert serving(engine) == 0
            handle.write(rest)
        assert wait_for(lambda: serving(engine) == 1)
        decision = engine.decide({"messages": [{"role": "user", "content": "a@b.example"}]})
        assert decision.blocked_by == "pii"  # the whole file went live
        # the swap comes first, then the event (from the watcher thread): wait for it;
        # one event, so nothing went live before the whole file
        assert wait_for(lambda: [e["type"] for e in events] == ["reloaded"])
        assert engine.status().reloads == 1
    finally:
        watcher.stop()


def test_an_atomic_rename_is_not_held_back(rev_dir: Path) -> None:
    """Renames publish complete files: no stability wait, so no added latency."""
    from policyd.reload import Watcher

    engine = Engine.from_path(rev_dir)
    watcher = Watcher(
        rev_dir, engine.reload, debounce_ms=50, in_place_confirm_ms=60_000, catch_up=False
    )
    watcher.start()
    try:
        scratch = rev_dir / ".p.yaml.tmp-1"
        scratch.write_text("".join(_guarded(2)))
        os.replace(scratch, rev_dir / "p.yaml")
        # with a 60 s stability wait for in-place writes, this passing means there was none
        assert wait_for(lambda: serving(engine) == 2)
        assert not watcher.confirming.is_set()
    finally:
        watcher.stop()


def test_content_digest_covers_yaml_and_prompt_files(bundle_dir: Path) -> None:
    from policyd.reload.watcher import BundleFilter, content_digest

    prompt = bundle_dir / "prompts" / "support-system" / "v3.md"
    bundle_filter = BundleFilter(str(bundle_dir), True, [str(prompt)])
    before = content_digest(str(bundle_dir), bundle_filter)
    assert content_digest(str(bundle_dir), bundle_filter) == before
    (bundle_dir / ".scratch.swp").write_text("ignored")
    assert content_digest(str(bundle_dir), bundle_filter) == before
    prompt.write_text(prompt.read_text() + "\nmore")
    after_prompt = content_digest(str(bundle_dir), bundle_filter)
    assert after_prompt != before
    (bundle_dir / "models.yaml").write_text((bundle_dir / "models.yaml").read_text() + "\n")
    assert content_digest(str(bundle_dir), bundle_filter) != after_prompt


def test_a_new_file_written_slowly_never_goes_live_as_its_prefix(rev_dir: Path) -> None:
    """A file created by open(..., "w") shows up as "added" only, even once written to: it is
    held back like an in-place write, not taken for a file renamed into place."""
    from policyd.reload import Watcher

    engine = Engine.from_path(rev_dir)
    events: list[dict[str, Any]] = []
    engine.on_event(events.append)
    watcher = Watcher(
        rev_dir, engine.reload, debounce_ms=50, in_place_confirm_ms=3000, catch_up=False
    )
    watcher.start()
    try:
        prefix, rest = (part.replace("{name: p,", "{name: q,") for part in _guarded(1))
        with open(rev_dir / "q.yaml", "w", encoding="utf-8") as handle:
            handle.write(prefix)
            handle.flush()
            assert watcher.confirming.wait(WAIT_S)
            assert "q" not in engine.status().policies
            handle.write(rest)
        assert wait_for(lambda: "q" in engine.status().policies)
        message = {"messages": [{"role": "user", "content": "a@b.example"}]}
        assert engine.decide(message, policy="q").blocked_by == "pii"
        # the swap comes first, then the event (from the watcher thread): wait for it
        assert wait_for(lambda: [e["type"] for e in events] == ["reloaded"])
    finally:
        watcher.stop()


def test_a_rename_does_not_wait_for_the_debounce(rev_dir: Path) -> None:
    """Renames settle after rename_settle_ms, whatever debounce_ms (for in-place writes)."""
    from policyd.reload import Watcher

    engine = Engine.from_path(rev_dir)
    watcher = Watcher(
        rev_dir, engine.reload, debounce_ms=600_000, in_place_confirm_ms=600_000, catch_up=False
    )
    watcher.start()
    try:
        write_atomically(rev_dir / "p.yaml", revision(7))
        # a 10-minute debounce: going live within WAIT_S means the short settle applied
        assert wait_for(lambda: serving(engine) == 7)
        assert not watcher.confirming.is_set()
        write_atomically(rev_dir / "p.yaml", revision(8))
        assert wait_for(lambda: serving(engine) == 8)
    finally:
        watcher.stop()


def test_burst_kind_tells_renames_from_writes(tmp_path: Path) -> None:
    from watchfiles import Change

    from policyd.reload.watcher import BundleFilter, _burst_kind

    (tmp_path / "a.yaml").write_text("a")
    os.symlink("a.yaml", tmp_path / "link.yaml")
    counts = BundleFilter(str(tmp_path), True)
    a, scratch = str(tmp_path / "a.yaml"), str(tmp_path / ".a.yaml.tmp")
    assert _burst_kind([(Change.modified, a)], counts) == (True, False)
    assert _burst_kind([(Change.added, a)], counts) == (True, False)  # open(..., "w")
    assert _burst_kind([(Change.added, a), (Change.deleted, scratch)], counts) == (False, True)
    assert _burst_kind([(Change.added, str(tmp_path / "link.yaml"))], counts) == (False, False)
    assert _burst_kind([(Change.deleted, a)], counts) == (False, False)
    assert _burst_kind([(Change.deleted, scratch)], counts) == (False, False)


def test_start_watching_thread_is_a_deprecated_name(rev_dir: Path) -> None:
    """0.1.0's start_watching_thread() still works, with a DeprecationWarning naming the
    new name (start_watching, and astart_watching for asyncio)."""
    engine = Engine.from_path(rev_dir)
    try:
        with pytest.warns(DeprecationWarning, match=r"Engine\.start_watching\(\)"):
            engine.start_watching_thread(debounce_ms=50)
        assert engine.status().watching
    finally:
        engine.close()
