"""Budget store throughput and latency: Redis (1, 4, 16 clients) against the memory store.

Run: ``python benchmarks/bench_stores.py [--redis URL] [--seconds 2] [--clients 1,4,16]``.

Each operation is one decision's reserve (three budgets: a tenant month, a user
day and a global 1-minute rolling rate, like the reference policy) followed by
its settle. A second table gives the Redis **server** time per reserve and per
settle (from ``INFO commandstats``, on a private ``redis-server`` the benchmark
starts and stops, so other clients do not blur it) for 1 and 3 budgets, with
and without a concurrency limit, for this build's ledger script and the 0.1.0
one in the same run (``bench_ledger.py``): the cost of one Redis core per decision.
Clients are separate processes, each with its own store and connection, all
sharing the same counters. Latencies are per call, measured inside the clients;
the "added" rows subtract the memory store's figures measured in the same run.
Figures vary with the machine; read the ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from policyd.budgets import Amount, Limit, Line, Window
from policyd.stores import Store, open_store

BIG = 2**50
CLIENT_TARGET_US = 150.0  # #17: Redis's added cost per decision, p50, over the memory store


def lines_for(client: int, i: int) -> list[Line]:
    amount = Amount(usd_micros=2_500, tokens=1_200, requests=1)
    return [
        Line(
            "tenant-monthly",
            "acme",
            Window("calendar_month"),
            Limit(usd_micros=BIG),
            amount,
            False,
            (0.5, 0.8, 0.95),
        ),
        Line(
            "user-daily",
            f"user-{client}-{i % 50}",
            Window("calendar_day"),
            Limit(usd_micros=BIG, tokens=BIG),
            amount,
            True,
        ),
        Line(
            "global-rate",
            "all",
            Window("rolling", rolling_s=60),
            Limit(requests=BIG, tokens=BIG),
            amount,
            True,
        ),
    ]


def run_client(spec: str, prefix: str, client: int, start_at: float, seconds: float) -> Any:
    """Reserve+settle in a loop for ``seconds``; returns (count, reserve µs, settle µs)."""
    store: Store = open_store(spec, key_prefix=prefix, command_timeout_s=5)
    lines = [lines_for(client, i) for i in range(50)]
    actual = Amount(usd_micros=1_234, tokens=800, requests=1)
    reserve_us: list[float] = []
    settle_us: list[float] = []
    store.reserve(f"warm-{client}", lines[0], datetime.now(UTC), 60)  # connect, load script
    time.sleep(max(0.0, start_at - time.time()))
    clock = time.perf_counter
    stop = clock() + seconds
    n = 0
    while clock() < stop:
        now = datetime.now(UTC)
        t0 = clock()
        result = store.reserve(f"c{client}-{n}", lines[n % 50], now, 60)
        t1 = clock()
        store.settle(result, actual, now)
        t2 = clock()
        if not result.ok:
            raise SystemExit(f"unexpected refusal or store error: {result.store_error}")
        reserve_us.append((t1 - t0) * 1e6)
        settle_us.append((t2 - t1) * 1e6)
        n += 1
    store.close()
    return n, reserve_us, settle_us


def measure(spec: str, prefix: str, clients: int, seconds: float) -> dict[str, float]:
    """Decisions a second, and p50 / p99 µs of a decision (``d``), its reserve (``r``) and
    its settle (``s``)."""
    start_at = time.time() + 1.0
    args = [(spec, prefix, c, start_at, seconds) for c in range(clients)]
    if clients == 1:
        results = [run_client(*args[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(clients) as pool:
            results = pool.starmap(run_client, args)
    count = sum(r[0] for r in results)
    reserve = sorted(x for r in results for x in r[1])
    settle = sorted(x for r in results for x in r[2])
    # a decision: its reserve plus its settle, paired
    decision = sorted(r + s for res in results for r, s in zip(res[1], res[2], strict=True))
    return {
        "ops": count / seconds,
        "d50": statistics.median(decision),
        "r50": statistics.median(reserve),
        "r99": reserve[int(len(reserve) * 0.99)],
        "s50": statistics.median(settle),
        "s99": settle[int(len(settle) * 0.99)],
    }


def in_flight_line() -> Line:
    """A concurrency limit's line (``limit: {concurrent: N}``) on the tenant key."""
    return Line(
        "tenant-monthly#in_flight",
        "acme",
        Window("in_flight"),
        Limit(requests=BIG),
        Amount(0, 0, 1),
        True,
    )


def private_redis(
    wrapper: tuple[str, ...] = (), extra: tuple[str, ...] = (), start_timeout_s: float = 10.0
) -> tuple[Any, str] | None:
    """A throwaway redis-server on a free loopback port (stopped by its PID), or None when
    there is no redis-server or it does not answer within ``start_timeout_s``. ``wrapper``
    runs it under another program (``valgrind ...``); ``extra`` are more server options."""
    import shutil
    import socket
    import subprocess

    import redis

    executable = shutil.which("redis-server")
    if executable is None:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [*wrapper, executable, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += extra
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(url, socket_timeout=1).ping()
            return process, url
        except redis.RedisError:
            time.sleep(0.05)
    process.kill()
    return None


def server_table(n: int) -> None:
    """Server time per call, this build's ledger script against the 0.1.0 one
    (``bench_ledger.py``, which also runs the steady-clock case)."""
    import shutil

    import bench_ledger

    if shutil.which("redis-server") is None:
        print("\nserver time: skipped (no redis-server on PATH)")
        return
    cases = ((1, False, False), (1, True, False), (3, False, False), (3, True, False))
    print()
    bench_ledger.print_table(bench_ledger.measure(n, 1, cases), n, 1)


#: the reply polling the client rows also run with (``reply_poll_us``, microseconds)
POLL_US = 300


@dataclass(frozen=True)
class ClientCost:
    """One client's decisions (reserve + settle, 3 budgets) on the memory store and on a
    private Redis, p50 µs, with what bounds the Redis figure from below on this host."""

    memory: dict[str, float]
    redis: dict[str, float]  # the default settings
    polled: dict[str, float]  # with ?reply_poll_us=POLL_US
    server_us: float  # the ledger script's server time per decision (two calls)
    round_trips_us: float  # two bare round trips (PING on a plain socket), p50
    polled_round_trips_us: float  # the same, polling for the reply

    @property
    def added(self) -> float:
        return self.redis["d50"] - self.memory["d50"]

    @property
    def added_polled(self) -> float:
        return self.polled["d50"] - self.memory["d50"]


def added_cost(seconds: float, repeat: int) -> ClientCost:
    """Redis's added cost per decision (reserve + settle), p50 µs, over the memory store:
    one client each, on a private ``redis-server``, alternating run by run, median run
    each; also with reply polling, and the floor's parts measured in the same run."""
    started = private_redis()
    if started is None:
        raise SystemExit("no redis-server on PATH")
    process, url = started
    prefix = f"policyd-bench:{uuid.uuid4().hex[:8]}:"
    specs = {"memory": "memory", "redis": url, "polled": f"{url}?reply_poll_us={POLL_US}"}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in specs}
    server: list[float] = []
    try:
        for r in range(repeat):
            for name in specs if r % 2 == 0 else reversed(specs):
                before = _evalsha_usec(url)
                runs[name].append(measure(specs[name], prefix, 1, seconds))
                if name != "memory":
                    usec, calls = (a - b for a, b in zip(_evalsha_usec(url), before, strict=True))
                    server.append(2 * usec / calls)
        round_trips = bare_round_trips(url, False), bare_round_trips(url, True)
    finally:
        process.kill()
        process.wait()
    memory, redis_one, polled = (
        sorted(runs[name], key=lambda m: m["d50"])[repeat // 2] for name in specs
    )
    return ClientCost(memory, redis_one, polled, statistics.median(server), *round_trips)


def _evalsha_usec(url: str) -> tuple[float, int]:
    """(usec, calls) of EVALSHA so far on the server (``INFO commandstats``)."""
    import redis

    client = redis.Redis.from_url(url)
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    client.close()
    return float(stats.get("usec", 0)), int(stats.get("calls", 0))


def bare_pings(sock: Any, polled: bool) -> Any:
    """One step of two ``PING`` round trips on a plain socket: no client library, no
    script. ``polled``: poll for the reply as ``reply_poll_us`` does before reading."""
    from policyd.stores.redis_lane import poll_for_reply

    ping = b"*1\r\n$4\r\nPING\r\n"

    def step(i: int) -> None:
        for _ in range(2):
            sock.sendall(ping)
            if polled:
                poll_for_reply(sock, POLL_US / 1e6)
            sock.recv(16)

    return step


def bare_round_trips(url: str, polled: bool, n: int = 3000) -> float:
    """p50 µs of two bare ``PING`` round trips (:func:`bare_pings`) on loopback TCP."""
    import socket

    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])
    times: list[float] = []
    clock = time.perf_counter
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        step = bare_pings(sock, polled)
        for i in range(n + 300):  # the first 300: warm-up
            t0 = clock()
            step(i)
            if i >= 300:
                times.append((clock() - t0) * 1e6)
    return statistics.median(times)


def cleanup(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis", default=os.environ.get("POLICYD_BENCH_REDIS", "redis://127.0.0.1:6379/15")
    )
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the median is kept")
    parser.add_argument(
        "--server-decisions", type=int, default=2000, help="decisions per server-time row"
    )
    options = parser.parse_args()
    prefix = f"policyd-bench:{uuid.uuid4().hex[:8]}:"

    def median_run(spec: str, clients: int) -> dict[str, float]:
        runs = [measure(spec, prefix, clients, options.seconds) for _ in range(options.repeat)]
        return sorted(runs, key=lambda m: m["ops"])[len(runs) // 2]

    rows = [("memory", 1, median_run("memory", 1))]
    try:
        for clients in (int(c) for c in options.clients.split(",")):
            rows.append(("redis", clients, median_run(options.redis, clients)))
    finally:
        cleanup(options.redis, prefix)

    print(
        f"budget store benchmark: reserve (3 budgets) + settle per decision, "
        f"{options.seconds:g}s per run, median of {options.repeat} runs, "
        f"{os.cpu_count()} CPUs, Redis {options.redis}"
    )
    header = (
        f"{'store':<8}{'clients':>8}{'decisions/s':>13}{'reserve p50':>13}"
        f"{'reserve p99':>13}{'settle p50':>12}{'settle p99':>12}"
    )
    print(header)
    print("-" * len(header))
    for store, clients, m in rows:
        print(
            f"{store:<8}{clients:>8}{m['ops']:>13,.0f}{m['r50']:>11.1f}µs{m['r99']:>11.1f}µs"
            f"{m['s50']:>10.1f}µs{m['s99']:>10.1f}µs"
        )
    memory = rows[0][2]
    redis_one = next(m for s, c, m in rows if s == "redis" and c == 1)
    added_p50 = redis_one["r50"] - memory["r50"]
    added_p99 = redis_one["r99"] - memory["r99"]
    print(
        f"\nadded latency per reservation, Redis (1 client) minus memory, same run: "
        f"p50 {added_p50:.1f}µs, p99 {added_p99:.1f}µs "
        f"(memory does {memory['ops'] / redis_one['ops']:.1f}x the single-client Redis rate)"
    )
    print(
        f"added cost per decision (reserve + settle), same: "
        f"p50 {redis_one['d50'] - memory['d50']:.1f}µs (target <= {CLIENT_TARGET_US:g}µs)"
    )
    server_table(options.server_decisions)


if __name__ == "__main__":
    main()
