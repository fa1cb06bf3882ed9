"""The loader pauses the cyclic garbage collector while reading, and always resumes it."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

from policyd.bundle import load_bundle
from policyd.loader import gc_paused

POLICIES = Path(__file__).resolve().parent.parent / "policies"


def test_paused_while_loading_and_resumed_after() -> None:
    seen: list[bool] = []
    with gc_paused():
        seen.append(gc.isenabled())
        with gc_paused():  # nested: the inner end does not resume it
            seen.append(gc.isenabled())
        seen.append(gc.isenabled())
    assert seen == [False, False, False] and gc.isenabled()
    assert load_bundle(POLICIES).ok and gc.isenabled()


def test_resumed_after_an_error_and_left_off_if_it_was_off() -> None:
    try:
        with gc_paused():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()
    gc.disable()
    try:
        load_bundle(POLICIES)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_concurrent_loads_resume_once_the_last_ends() -> None:
    inside, release = threading.Barrier(2), threading.Event()

    def hold() -> None:
        with gc_paused():
            inside.wait()
            release.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    inside.wait()
    assert load_bundle(POLICIES).ok
    assert not gc.isenabled()  # the other thread is still reading
    release.set()
    thread.join()
    assert gc.isenabled()


def test_what_was_read_skips_the_young_generations() -> None:
    gc.collect()
    bundle = load_bundle(POLICIES)
    young = {id(o) for o in gc.get_objects(generation=0)} | {
        id(o) for o in gc.get_objects(generation=1)
    }
    docs = [doc for _, doc in bundle.catalogs]
    assert docs and all(id(doc.data) not in young for doc in docs if gc.is_tracked(doc.data))
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_objects_the_application_froze_stay_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert load_bundle(POLICIES).ok
        # Unfreezing would empty the permanent generation and freezing again would grow it;
        # it may shrink a little: frozen objects freed meanwhile (a full cache evicting an
        # entry when the suite ran before this test) leave it.
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
