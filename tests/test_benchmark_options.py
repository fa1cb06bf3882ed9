"""The benchmark options the README and docs/performance.md show exist and are checked.

Running the benchmarks takes minutes (the memory row ten), so these only ask each
script for its options, and give ``targets.py --only`` a target it does not have.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=BENCHMARKS.parent, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_targets_takes_only_and_client_seconds() -> None:
    shown = run(str(BENCHMARKS / "targets.py"), "--help")
    assert shown.returncode == 0, shown.stderr
    assert "--only" in shown.stdout and "--client-seconds" in shown.stdout


def test_targets_refuses_a_target_it_does_not_have() -> None:
    refused = run(str(BENCHMARKS / "targets.py"), "--only", "9")
    assert refused.returncode == 2
    assert "--only 9: no such target" in refused.stderr


def test_bench_ledger_takes_valgrind() -> None:
    shown = run(str(BENCHMARKS / "bench_ledger.py"), "--help")
    assert shown.returncode == 0, shown.stderr
    assert "--valgrind" in shown.stdout and "--split" in shown.stdout


def test_bench_redis_client_takes_its_options() -> None:
    shown = run(str(BENCHMARKS / "bench_redis_client.py"), "--help")
    assert shown.returncode == 0, shown.stderr
    assert all(option in shown.stdout for option in ("--n", "--rounds", "--profile"))


def test_the_support_bot_options_docs_show_exist() -> None:
    shown = run(str(BENCHMARKS / "bench_decide_target.py"), "--help")
    assert shown.returncode == 0, shown.stderr
    assert "--policy" in shown.stdout and "--scan-only-twin" in shown.stdout
    scans = run(str(BENCHMARKS / "bench_scan_calls.py"), "--only", "email", "--calls", "3")
    assert scans.returncode == 0, scans.stderr
