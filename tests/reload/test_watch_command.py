"""``policyd watch``: what an operator tails during a rollout."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from policyd.reload import run_watch

from .conftest import WAIT_S, revision, wait_for, write_atomically


class Tail:
    """run_watch in a thread, its lines collected."""

    def __init__(self, path: Path) -> None:
        self.lines: list[str] = []
        self.stop = threading.Event()
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, args=(path,))
        self.thread.start()

    def _run(self, path: Path) -> None:
        self.code = run_watch(str(path), echo=self.lines.append, debounce_ms=50, stop=self.stop)

    def wait(self, text: str, count: int = 1) -> bool:
        return wait_for(lambda: sum(text in line for line in self.lines) >= count)

    def close(self) -> int | None:
        self.stop.set()
        self.thread.join(WAIT_S)
        return self.code


def test_watch_prints_revisions_and_rejections(rev_dir: Path) -> None:
    tail = Tail(rev_dir)
    try:
        assert tail.wait("serving  revision")
        assert any(line.strip().startswith("p r0 (sha256:") for line in tail.lines)
        # No wait needed: the watcher's catch-up check loads a change made while it starts.
        write_atomically(rev_dir / "p.yaml", revision(1))
        assert tail.wait("accepted revision")
        assert tail.wait("~ policy p r0 -> r1")

        write_atomically(rev_dir / "p.yaml", revision(2, broken=True))
        assert tail.wait("REJECTED revision")
        assert tail.wait("p.yaml:10:1: PD001 YAML syntax error")
        rejected = next(line for line in tail.lines if "REJECTED" in line)
        assert "still serving" in rejected

        write_atomically(rev_dir / "p.yaml", revision(3))
        assert tail.wait("accepted revision", 2)
        assert tail.wait("~ policy p r1 -> r3")
    finally:
        assert tail.close() == 0
    assert tail.lines[-1] == "policyd watch: stopped"


def test_watch_waits_for_a_broken_bundle_to_be_fixed(rev_dir: Path) -> None:
    (rev_dir / "p.yaml").write_text(revision(0, broken=True))
    tail = Tail(rev_dir)
    try:
        assert tail.wait("REJECTED revision; still serving nothing yet")
        write_atomically(rev_dir / "p.yaml", revision(4))
        assert tail.wait("serving  revision")
        assert tail.wait("p r4 (sha256:")
    finally:
        assert tail.close() == 0


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
def test_cli_watch_runs_until_ctrl_c(rev_dir: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "policyd.cli", "watch", str(rev_dir), "--debounce", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        # A runner started in the background (nohup, `cmd &` in a script) passes SIGINT on
        # as ignored, and Python then installs no Ctrl-C handler: give the child the default.
        preexec_fn=_default_sigint,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()], daemon=True)
    reader.start()

    def expect(text: str) -> str:
        deadline = time.monotonic() + WAIT_S * 2  # includes the interpreter starting
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}")

    try:
        expect("serving  revision")
        write_atomically(rev_dir / "p.yaml", revision(1))
        assert "(was " in expect("accepted revision")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(WAIT_S) == 0
        expect("policyd watch: stopped")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
