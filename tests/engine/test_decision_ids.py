"""Decision ids name reservations in a shared store: never repeated, not even across a fork."""

from __future__ import annotations

import os
import re
import threading

from policyd.decision_id import BATCH, new_decision_id

HEX128 = re.compile(r"[0-9a-f]{32}")


def test_ids_are_128_bit_hex_and_unique() -> None:
    ids = [new_decision_id() for _ in range(5 * BATCH + 7)]
    assert all(HEX128.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_threads_never_share_an_id() -> None:
    seen: list[list[str]] = [[] for _ in range(8)]

    def draw(out: list[str]) -> None:
        out.extend(new_decision_id() for _ in range(3 * BATCH))

    threads = [threading.Thread(target=draw, args=(out,)) for out in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in seen for i in out]
    assert len(set(every)) == len(every) == 8 * 3 * BATCH


def test_a_forked_child_never_hands_out_its_parents_ids() -> None:
    new_decision_id()  # the parent holds ids it drew and has not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then exit without running pytest's teardown
        try:
            os.write(write, " ".join(new_decision_id() for _ in range(BATCH)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [new_decision_id() for _ in range(BATCH)]
    assert len(child) == BATCH
    assert not set(child) & set(parent)
