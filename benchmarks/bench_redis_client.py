"""Where a decision's Redis time goes on the client: the parts, measured in one run.

Run: ``python benchmarks/bench_redis_client.py [--n 3000] [--profile]``.

On a private ``redis-server`` (started and stopped by PID), one client, 3 budgets (the
lines of ``bench_stores.py``), p50 wall µs and mean CPU µs of the calling thread per
decision (a reserve and its settle, two round trips), for:

- the memory store, and the Redis store (the difference is target 4's client figure),
  also polling for replies (``reply_poll_us``) and with its script calls through
  redis-py's ``Script`` object (as before the lane);
- two ``PING`` round trips: through redis-py's command path, on a held connection
  (what the store's lane does), and on a bare socket, TCP and Unix, blocking and
  polled (the floor of this host); the Redis store over the Unix socket too;
- two ``EVALSHA`` of a script that returns at once, with the ledger's keys and
  arguments, on a held connection: the round trips with the calls' bytes and Redis's
  fixed cost of a script call, without the ledger's work;
- the client's own packing and decoding (``redis_codec``), no I/O;
- the ledger script's server time per call (``INFO commandstats``).

``--profile`` adds a cProfile of the Redis store's decisions. Each row is also run with
redis-py's pure-Python parser (hiredis hidden from a child interpreter) when hiredis is
installed, alternating round by round (median of ``--rounds``). The machine is shared:
read the rows against each other, same run.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_stores

from policyd.budgets import Amount
from policyd.budgets.windows import current_window, epoch_ms
from policyd.stores import open_store
from policyd.stores import redis_codec as codec

ACTUAL = Amount(usd_micros=1_234, tokens=800, requests=1)


def timed(step: Callable[[int], Any], n: int) -> tuple[float, float]:
    """(p50 wall µs, mean thread CPU µs) of ``step(i)`` over ``n`` runs, after a warm-up."""
    for i in range(min(300, n)):
        step(-1 - i)
    wall: list[float] = []
    cpu: list[float] = []
    clock, thread = time.perf_counter, time.thread_time
    for i in range(n):
        t0, c0 = clock(), thread()
        step(i)
        c1, t1 = thread(), clock()
        wall.append((t1 - t0) * 1e6)
        cpu.append((c1 - c0) * 1e6)
    return statistics.median(wall), statistics.fmean(cpu)


def decisions(spec: str, n: int, script_object: bool = False) -> Callable[[int], None]:
    """One decision's reserve and settle on a store; ``script_object``: the Redis store's
    calls through redis-py's ``Script`` and pool checkout, as before the lane."""
    store = open_store(spec, key_prefix=f"client:{uuid.uuid4().hex[:8]}:", command_timeout_s=5)
    if script_object:
        from policyd.stores.redis import LUA

        io = store._io  # type: ignore[attr-defined]
        io.script, io.lane = io.client.register_script(LUA), None
    lines = [bench_stores.lines_for(0, i) for i in range(50)]
    run = uuid.uuid4().hex[:6]

    def step(i: int) -> None:
        now = datetime.now(UTC)
        result = store.reserve(f"{run}-{i}", lines[i % 50], now, 60)
        store.settle(result, ACTUAL, now)

    return step


def measure(url: str, n: int, unix_path: str) -> dict[str, tuple[float, float]]:
    import redis

    rows: dict[str, tuple[float, float]] = {}
    rows["memory store decision"] = timed(decisions("memory", n), n)
    client = redis.Redis.from_url(url)
    calls, usec = _ledger_stats(client)
    rows["Redis store decision"] = timed(decisions(url, n), n)
    calls_after, usec_after = _ledger_stats(client)
    server = (usec_after - usec) / (calls_after - calls)
    polled = f"{url}?reply_poll_us={bench_stores.POLL_US}"
    rows[f"Redis store decision, reply_poll_us={bench_stores.POLL_US}"] = timed(
        decisions(polled, n), n
    )
    rows["Redis store decision, Unix socket"] = timed(decisions(f"unix://{unix_path}", n), n)
    rows[f"Redis store decision, Unix socket, reply_poll_us={bench_stores.POLL_US}"] = timed(
        decisions(f"unix://{unix_path}?reply_poll_us={bench_stores.POLL_US}", n), n
    )
    rows["Redis store decision, via redis-py Script"] = timed(decisions(url, n, True), n)
    rows["2 PING, redis-py command path"] = timed(lambda i: (client.ping(), client.ping()), n)
    pool = client.connection_pool
    conn = pool.get_connection()
    ping = conn.pack_command("PING")

    def held_ping(i: int) -> None:
        for _ in range(2):
            conn.send_packed_command(ping, check_health=False)
            conn.read_response()

    rows["2 PING, held connection"] = timed(held_ping, n)
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rows["2 PING, bare socket"] = timed(bench_stores.bare_pings(sock, False), n)
        rows["2 PING, bare socket, polled"] = timed(bench_stores.bare_pings(sock, True), n)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(unix_path)
        rows["2 PING, bare Unix socket"] = timed(bench_stores.bare_pings(sock, False), n)
        rows["2 PING, bare Unix socket, polled"] = timed(bench_stores.bare_pings(sock, True), n)
    lines = bench_stores.lines_for(0, 0)
    now = datetime.now(UTC)
    slots = [current_window(line.window, now) for line in lines]
    now_ms = epoch_ms(now)
    (call,) = codec.reserve_calls("p:", "d", lines, slots, now_ms, 60_000, 600_000, False)
    sha = client.script_load("return 1")
    evalsha = conn.pack_command("EVALSHA", sha, len(call.keys), *call.keys, *call.args)

    def held_evalsha(i: int) -> None:
        for _ in range(2):
            conn.send_packed_command(evalsha, check_health=False)
            conn.read_response()

    rows["2 EVALSHA 'return 1', ledger's keys+args"] = timed(held_evalsha, n)
    reply = [1] + [2500, 1200, 1, 1, -1, 0] * 3

    def codec_only(i: int) -> None:
        at = datetime.now(UTC)
        ms = epoch_ms(at)
        got = [current_window(line.window, at) for line in lines]
        calls = codec.reserve_calls("p:", "d", lines, got, ms, 60_000, 600_000, False)
        result = codec.reserve_result("d", lines, got, calls, [reply], ms, 60)
        codec.settle_calls("p:", result, ACTUAL, ms, 600_000, False, False)

    rows["client packing + decoding, no I/O"] = timed(codec_only, n)
    pool.release(conn)
    rows["(server time of the ledger calls, per decision)"] = (2 * server, 0.0)
    client.close()
    return rows


def _ledger_stats(client: Any) -> tuple[int, int]:
    """(calls, usec) of EVALSHA so far, from INFO commandstats."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return int(stats["calls"]), int(stats["usec"])


def child(n: int) -> None:
    """In a child interpreter: run ``measure`` and print JSON (hiredis may be hidden)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "redis.sock")
        started = bench_stores.private_redis(
            extra=("--unixsocket", path, "--unixsocketperm", "700")
        )
        if started is None:
            raise SystemExit("no redis-server on PATH")
        process, url = started
        try:
            print(json.dumps(measure(url, n, path)))
        finally:
            process.kill()
            process.wait()


def run_child(n: int, hide_hiredis: bool) -> dict[str, list[float]]:
    code = (
        ("import sys; sys.modules['hiredis'] = None\n" if hide_hiredis else "")
        + f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        + f"import bench_redis_client; bench_redis_client.child({n})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, list[float]] = json.loads(out.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="decisions (or pairs) per row")
    parser.add_argument("--rounds", type=int, default=3, help="alternating; median kept")
    parser.add_argument("--profile", action="store_true", help="cProfile the Redis store")
    options = parser.parse_args()
    import redis.utils

    variants = ["hiredis", "pure-Python parser"] if redis.utils.HIREDIS_AVAILABLE else ["pure"]
    rounds: dict[str, list[dict[str, list[float]]]] = {v: [] for v in variants}
    for r in range(options.rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:
            rounds[v].append(run_child(options.n, v != "hiredis"))
    runs = {
        v: {
            name: [statistics.median(run[name][k] for run in rounds[v]) for k in (0, 1)]
            for name in rounds[v][0]
        }
        for v in variants
    }
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"load average {load}; median of {options.rounds} alternating rounds")
    print(f"{'per decision (2 round trips)':48s}" + "".join(f"{v:>26s}" for v in variants))
    for name in runs[variants[0]]:
        cells = "".join(
            f"{runs[v][name][0]:9.0f} wall {runs[v][name][1]:6.0f} cpu" for v in variants
        )
        print(f"{name:48s}{cells}")
    base = runs[variants[0]]
    added = base["Redis store decision"][0] - base["memory store decision"][0]
    floor = base["2 PING, bare socket"][0]
    print(
        f"\nadded by Redis: {added:.0f} us p50 (target <= {bench_stores.CLIENT_TARGET_US:g}); "
        f"two bare round trips alone: {floor:.0f} us"
    )
    if options.profile:
        import cProfile
        import pstats

        started = bench_stores.private_redis()
        assert started is not None
        process, url = started
        try:
            step = decisions(url, options.n)
            step(-1)
            profile = cProfile.Profile()
            profile.runcall(lambda: [step(i) for i in range(options.n)])
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        finally:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
