"""Hot reload: how long until a file change serves, and what decide() feels meanwhile.

Run: python benchmarks/bench_reload.py [--changes 50] [--policy-dir policies]

Works on a copy of the shipped bundle in a temporary directory, with the real watcher
(inotify through watchfiles). Two measurements, printed in one table:

1. write -> serving: each change rewrites ``support-bot.yaml`` with a new version, by an
   atomic rename (temp file + ``os.replace``, as editors, rsync and deploy tools do) or in
   place (``write_text``: truncate and write); the clock runs from the write until
   ``engine.policy_ref()`` returns the new version (polled every 0.2 ms). Median and p95
   over ``--changes`` changes, with the default settings (renames settle after 10 ms; an
   in-place write whose writer closed the file, with no file of the bundle open, 50 ms
   after the close, where inotify's open/close events are tracked). In place once more
   with open tracking off (``POLICYD_TRACK_OPENS=0``): the fallback, and what every
   in-place write cost before, the 200 ms debounce and a 500 ms content check. The build
   alone (load, validate, compile, gate, swap) is timed by ``engine.reload()`` with no
   watcher.
2. decide() latency on another thread: per-call times of ``decide()`` in a thread, first
   with nothing else running, then while the main thread reloads back to back (each reload
   compiles a changed bundle). Both phases run in the same process, one after the other;
   the ratio is the figure to read, absolute times depend on the machine's load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policyd import Engine

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
REQUEST: dict[str, Any] = {
    "tenant": {"id": "acme", "tier": "pro"},
    "user": {"id": "user-7", "country": "DE"},
    "feature": "chat",
    "tags": [],
    "messages": [{"role": "user", "content": "How do I reset my password?"}],
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def write_version(policy: Path, text: str, version: str, in_place: bool = False) -> None:
    """Rewrite the policy with a new metadata.version, atomically (temp file + rename) or
    in place."""
    new = text.replace('version: "2026.11.3"', f'version: "{version}"')
    if in_place:
        policy.write_text(new)
        return
    scratch = policy.with_name(f".{policy.name}.tmp")
    scratch.write_text(new)
    os.replace(scratch, policy)


def write_to_serving(
    bundle: Path, changes: int, in_place: bool = False, track_opens: bool = True
) -> list[float]:
    """Seconds from each write until the new version serves, default watcher settings
    (``track_opens=False``: with ``POLICYD_TRACK_OPENS=0``)."""
    policy = bundle / "support-bot.yaml"
    text = policy.read_text()
    engine = Engine.from_path(bundle, clock=lambda: NOW)
    saved = os.environ.get("POLICYD_TRACK_OPENS")
    os.environ["POLICYD_TRACK_OPENS"] = "1" if track_opens else "0"
    try:
        engine.start_watching()
    finally:
        if saved is None:
            del os.environ["POLICYD_TRACK_OPENS"]
        else:
            os.environ["POLICYD_TRACK_OPENS"] = saved
    watcher = engine._watcher
    times = []
    try:
        deadline = time.monotonic() + 10
        while watcher is not None and watcher.bursts < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # the watcher's first check (catch-up) has started...
        engine.reload()  # ...and ended (reloads take turns): it must not read a half write
        for i in range(changes):
            version = f"bench-{'in-place' if in_place else 'rename'}-{i}"
            started = time.perf_counter()
            write_version(policy, text, version, in_place)
            deadline = started + 10
            while engine.policy_ref("support-bot").version != version:
                if time.perf_counter() > deadline:
                    raise SystemExit(f"change {i} did not go live within 10 s")
                time.sleep(0.0002)
            times.append(time.perf_counter() - started)
            time.sleep(0.05)
    finally:
        engine.close()
        policy.write_text(text)
    return times


def reload_latencies(
    changes: int, policy_dir: Path = ROOT / "policies", fallback: bool = False
) -> dict[str, list[float]]:
    """write -> serving times on a copy of ``policy_dir``: by atomic rename, in place, and
    ``engine.reload()`` alone (the build, no watcher); with ``fallback``, in place with
    open tracking off as well."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "policies"
        shutil.copytree(policy_dir, bundle)
        return {
            "build": build_times(bundle, changes),
            "rename": write_to_serving(bundle, changes),
            "in place": write_to_serving(bundle, changes, in_place=True),
            **(
                {"in place, no open tracking": write_to_serving(bundle, changes, True, False)}
                if fallback
                else {}
            ),
        }


def build_times(bundle: Path, changes: int) -> list[float]:
    policy = bundle / "support-bot.yaml"
    text = policy.read_text()
    engine = Engine.from_path(bundle, clock=lambda: NOW)
    times = []
    for i in range(changes):
        write_version(policy, text, f"build-{i}")
        started = time.perf_counter()
        assert engine.reload()
        times.append(time.perf_counter() - started)
    policy.write_text(text)
    engine.close()
    return times


def decide_latencies(bundle: Path, seconds: float, reloading: bool) -> tuple[list[float], int]:
    """Per-call decide() times on a thread; with ``reloading``, the main thread reloads."""
    policy = bundle / "support-bot.yaml"
    text = policy.read_text()
    engine = Engine.from_path(bundle, clock=lambda: NOW)
    stop = threading.Event()
    times: list[float] = []

    def decide_loop() -> None:
        clock = time.perf_counter
        while not stop.is_set():
            started = clock()
            engine.decide(REQUEST, policy="support-bot")
            times.append(clock() - started)

    thread = threading.Thread(target=decide_loop)
    thread.start()
    reloads = 0
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            if reloading:
                write_version(policy, text, f"load-{reloads}")
                assert engine.reload()
                reloads += 1
            else:
                time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
        policy.write_text(text)
        engine.close()
    return times, reloads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=50, help="file changes per figure")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each decide phase")
    parser.add_argument("--policy-dir", default=str(ROOT / "policies"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "policies"
        shutil.copytree(args.policy_dir, bundle)
        rows: list[tuple[str, ...]] = []

        def row(name: str, values: list[float], unit: float, note: str) -> None:
            fmt = (lambda v: f"{v * unit:.1f}") if unit == 1e3 else (lambda v: f"{v * unit:.0f}")
            stats = (
                statistics.median(values),
                percentile(values, 0.95),
                percentile(values, 0.99),
                percentile(values, 0.999),
                max(values),
            )
            label = "ms" if unit == 1e3 else "us"
            rows.append((name, label, *(fmt(v) for v in stats), note))

        build = build_times(bundle, args.changes)
        row("reload() build + swap, no watcher", build, 1e3, f"{len(build)} reloads")
        for in_place, track, how in (
            (False, True, "atomic rename"),
            (True, True, "in place"),
            (True, False, "in place, open tracking off"),
        ):
            t = write_to_serving(bundle, args.changes, in_place, track)
            row(f"file write -> serving, {how}", t, 1e3, f"{len(t)} changes")
        idle, _ = decide_latencies(bundle, args.seconds, reloading=False)
        busy, reloads = decide_latencies(bundle, args.seconds, reloading=True)
        row("decide() on a thread, idle", idle, 1e6, f"{len(idle)} calls")
        row(
            "decide() on a thread, reloads compiling",
            busy,
            1e6,
            f"{len(busy)} calls during {reloads} reloads",
        )

    header = ("measure", "unit", "median", "p95", "p99", "p99.9", "max", "n")
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, line in enumerate(table):
        cells = [
            c.ljust(w) if j in (0, 7) else c.rjust(w)
            for j, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    slow_idle = sum(v > 1e-3 for v in idle) / len(idle)
    slow_busy = sum(v > 1e-3 for v in busy) / len(busy)
    print(
        f"\ndecide() while reloads compile vs idle (same run): median "
        f"x{statistics.median(busy) / statistics.median(idle):.2f}, p99 "
        f"x{percentile(busy, 0.99) / percentile(idle, 0.99):.2f}; calls over 1 ms: "
        f"{slow_idle:.2%} idle, {slow_busy:.2%} while reloading"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at the end of the run")


if __name__ == "__main__":
    main()
