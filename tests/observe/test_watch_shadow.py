"""``policyd watch LIVE --shadow CANDIDATE --requests FILE``: a shadow report kept up to date
as either bundle changes, and (``--follow``) on requests appended to FILE."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from observe_helpers import request

from policyd.cli import main
from policyd.watch_shadow import run_shadow_watch

WAIT_S = 20.0  # generous: the machine is shared
LONG = "request.input_tokens > 60000"
SHORT = "request.input_tokens > 1000"


def wait_for(predicate: Callable[[], object]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def write_atomically(path: Path, text: str) -> None:
    scratch = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    scratch.write_text(text)
    os.replace(scratch, path)


def edit(bundle: Path, old: str, new: str) -> None:
    policy = bundle / "support-bot.yaml"
    text = policy.read_text()
    assert old in text
    write_atomically(policy, text.replace(old, new))


def line(i: int, tokens: int) -> str:
    row: dict[str, Any] = {
        "request": request(tenant={"id": f"t{i}", "tier": "pro"}, input_tokens=tokens),
        "policy": "support-bot",
        "time": "2026-11-24T12:00:00Z",
    }
    return json.dumps(row) + "\n"


class Tail:
    """run_shadow_watch in a thread, its lines collected."""

    def __init__(self, live: Path, candidate: Path, requests: Path, **options: Any) -> None:
        self.lines: list[str] = []
        self.stop = threading.Event()
        self.code: int | None = None
        args = (str(live), str(candidate), str(requests))
        kwargs = {"echo": self.lines.append, "debounce_ms": 50, "stop": self.stop, **options}
        self.thread = threading.Thread(target=self._run, args=(args, kwargs))
        self.thread.start()

    def _run(self, args: tuple[str, str, str], kwargs: dict[str, Any]) -> None:
        self.code = run_shadow_watch(*args, **kwargs)

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait(self, text: str, count: int = 1) -> bool:
        return wait_for(lambda: self.text().count(text) >= count)

    def close(self) -> int | None:
        self.stop.set()
        self.thread.join(WAIT_S)
        return self.code


def test_the_report_follows_each_revision_of_either_bundle(bundle: Path, tmp_path: Path):
    candidate = tmp_path / "candidate"
    shutil.copytree(bundle, candidate)
    edit(candidate, LONG, SHORT)
    requests = tmp_path / "requests.jsonl"
    # 4 long requests (2,000 tokens) move from economy to premium under the candidate
    requests.write_text("".join(line(i, 2000 if i < 4 else 100) for i in range(10)))
    tail = Tail(bundle, candidate, requests)
    try:
        assert tail.wait("10 requests replayed, 4 decisions changed"), tail.text()
        assert "tier economy -> premium" in tail.text()
        assert "+ routing long-input match" in tail.text()

        # the live bundle takes the same change: nothing differs any more
        edit(bundle, LONG, SHORT)
        assert tail.wait("10 requests replayed, 0 decisions changed"), tail.text()
        assert any(
            x.split(" ", 1)[1].startswith("live   revision") and "(was " in x for x in tail.lines
        )

        # a broken candidate is reported; the last good one keeps being compared
        write_atomically(candidate / "support-bot.yaml", "policy: [unclosed\n")
        assert tail.wait("shadow REJECTED revision"), tail.text()
        assert tail.wait("still comparing")
        assert "support-bot.yaml:1:" in tail.text()
        replays = tail.text().count("requests replayed")

        # fixed, and now stricter than live again
        shutil.copy(bundle / "support-bot.yaml", candidate / "support-bot.yaml")
        edit(candidate, SHORT, "request.input_tokens > 50")
        assert tail.wait("requests replayed", replays + 1), tail.text()
        assert "10 requests replayed, 6 decisions changed" in tail.text()
    finally:
        assert tail.close() == 0
    assert tail.lines[-1] == "policyd watch: stopped"


def test_follow_compares_lines_as_they_are_appended(bundle: Path, tmp_path: Path):
    candidate = tmp_path / "candidate"
    shutil.copytree(bundle, candidate)
    edit(candidate, LONG, SHORT)
    requests = tmp_path / "decisions.jsonl"
    requests.write_text(line(0, 100))
    tail = Tail(bundle, candidate, requests, follow=True)
    try:
        assert tail.wait("1 requests replayed, 0 decisions changed"), tail.text()
        with requests.open("a") as fh:
            fh.write(line(1, 2000))  # changes tier
            fh.write(line(2, 100))  # does not
            fh.write(line(3, 2000)[:20])  # half a line: waits for the rest
            fh.flush()
            assert tail.wait("shadow tier: economy -> premium on 1 new request(s)"), tail.text()
            fh.write(line(3, 2000)[20:])
        assert tail.wait("2 in all"), tail.text()
        with requests.open("a") as fh:
            fh.write("not json\n")
        assert tail.wait("skipped: "), tail.text()
        skipped = next(x for x in tail.lines if "skipped: " in x)
        assert f"{requests}:5" in skipped
        assert "not json" not in skipped  # the line's content is never echoed
    finally:
        assert tail.close() == 0


def test_the_options_need_each_other(bundle: Path, tmp_path: Path):
    requests = tmp_path / "r.jsonl"
    requests.write_text(line(0, 100))
    runner = CliRunner()
    no_requests = runner.invoke(main, ["watch", str(bundle), "--shadow", str(bundle)])
    assert no_requests.exit_code == 2
    assert "--shadow needs --requests FILE" in no_requests.output
    no_shadow = runner.invoke(main, ["watch", str(bundle), "--requests", str(requests)])
    assert no_shadow.exit_code == 2
    assert "--requests needs --shadow CANDIDATE" in no_shadow.output
    assert "Traceback" not in no_requests.output + no_shadow.output


def test_the_documented_command_prints_the_documented_report(tmp_path: Path):
    """docs/observability.md runs `policyd watch policies/ --shadow ... --top 3` on the
    tour's traffic and shows its first report: the same counts come out."""
    import signal
    import subprocess
    import sys

    from observe_helpers import REPO

    tour = tmp_path / "tour"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    subprocess.run(
        [sys.executable, str(REPO / "examples" / "observe_tour.py"), "traffic", str(tour)],
        check=True,
        capture_output=True,
        cwd=REPO,
        env=env,
    )
    docs = (REPO / "docs" / "observability.md").read_text()
    command = "policyd watch policies/ --shadow /tmp/policyd-tour/candidate --requests "
    assert command in docs
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "policyd.cli", "watch", "policies/"),
                *("--shadow", str(tour / "candidate")),
                *("--requests", str(tour / "decisions.jsonl"), "--top", "3"),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
        try:
            assert wait_for(lambda: "rollouts\n  support-system-v4" in out.read_text())
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(WAIT_S) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    printed = out.read_text()
    for shown in (
        "2,000 requests replayed, 799 decisions changed (40.0%), 0 not replayed",
        "  tier economy -> premium                                          361",
        "  base $2.83  head $14.12  delta +$11.30 (+399.8%)  over 2,000 priced requests",
        "  support-system-v4: 545 requests, 200 sticky keys change variant (v3 -> v4: 545)",
    ):
        assert shown in docs
        assert shown in printed, printed
    assert printed.rstrip().endswith("policyd watch: stopped")
