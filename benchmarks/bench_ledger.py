"""Redis server time per ledger call: this build's script against the 0.1.0 one, same run.

Run: ``python benchmarks/bench_ledger.py [--decisions 2000] [--rounds 3] [--valgrind]``.

Each contender reserves ``--decisions`` decisions (1 or 3 budgets, with or without a
concurrency limit, the lines of ``bench_stores.py``) and then settles them, on a private
``redis-server`` started and stopped by PID; the Redis server time per call is the
``cmdstat_evalsha`` usec delta of ``INFO commandstats`` over the calls delta. "fixed"
runs every call at one instant (the figure ``bench_stores.py`` always printed); "steady"
moves the clock 90 ms per decision with each reserve followed by its settle, so
settled ids fall due and are swept as in production (grace 60 s, so that most of them
do within a run of 2,000 decisions: 3 minutes of the caller's clock). Contenders
alternate, round by round, and the median round is kept.

``--valgrind`` counts instructions instead, which the machine's load does not change:
the private server runs under callgrind, and each contender's ``--decisions`` reserves
(then settles) are counted alone (``callgrind_control`` zeroes the count before them and
dumps it after), less a dump of the idle server, over the calls.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_stores
from legacy import ledger_0_1_0 as legacy

from policyd.budgets import Amount, Line
from policyd.budgets.ledger import ReserveResult
from policyd.budgets.windows import current_window, epoch_ms
from policyd.stores import redis_codec as codec
from policyd.stores.redis import LUA

TARGET_US = 40.0
ACTUAL = Amount(usd_micros=1_234, tokens=800, requests=1)


@dataclass(frozen=True)
class Contender:
    name: str
    script: str
    reserve: Callable[[str, str, list[Line], datetime, int], tuple[list[str], list[Any]]]
    settle: Callable[[str, ReserveResult, datetime, int], tuple[list[str], list[Any]]]


def _new_reserve(
    prefix: str, did: str, lines: list[Line], now: datetime, grace_ms: int
) -> tuple[list[str], list[Any]]:
    slots = [current_window(line.window, now) for line in lines]
    call = codec.reserve_calls(prefix, did, lines, slots, epoch_ms(now), 60_000, grace_ms, False)
    return call[0].keys, call[0].args


def _new_settle(
    prefix: str, reservation: ReserveResult, now: datetime, grace_ms: int
) -> tuple[list[str], list[Any]]:
    calls = codec.settle_calls(prefix, reservation, ACTUAL, epoch_ms(now), grace_ms, False, False)
    return calls[0].keys, calls[0].args


def _old_reserve(
    prefix: str, did: str, lines: list[Line], now: datetime, grace_ms: int
) -> tuple[list[str], list[Any]]:
    slots = [current_window(line.window, now) for line in lines]
    return legacy.reserve_call(prefix, did, lines, slots, epoch_ms(now), 60_000, grace_ms)


def _old_settle(
    prefix: str, reservation: ReserveResult, now: datetime, grace_ms: int
) -> tuple[list[str], list[Any]]:
    return legacy.settle_call(prefix, reservation, ACTUAL, epoch_ms(now), grace_ms)


CONTENDERS = (
    Contender("0.1.0", legacy.LUA, _old_reserve, _old_settle),
    Contender("now", LUA, _new_reserve, _new_settle),
)


def _usec(client: Any) -> tuple[float, int]:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return float(stats.get("usec", 0)), int(stats.get("calls", 0))


def _handle(did: str, lines: list[Line], now: datetime) -> ReserveResult:
    """What settle needs of a reservation (the replies themselves are not parsed)."""
    slots = [current_window(line.window, now) for line in lines]
    return ReserveResult(
        did, True, codec.unknown_results(lines, slots), None, epoch_ms(now) + 60_000
    )


def server_us(
    client: Any, who: Contender, n_budgets: int, concurrent: bool, n: int, steady: bool
) -> tuple[float, float]:
    """Mean server µs per reserve and per settle of ``n`` decisions."""
    sha = client.script_load(who.script)
    prefix = f"lb{uuid.uuid4().hex[:8]}:"
    grace_ms = 60_000 if steady else 600_000

    def lines(i: int) -> list[Line]:
        chosen = bench_stores.lines_for(0, i)[:n_budgets]
        return [*chosen, bench_stores.in_flight_line()] if concurrent else chosen

    def run(keys: list[str], args: list[Any]) -> None:
        client.evalsha(sha, len(keys), *keys, *args)

    start = datetime.now(UTC)
    run(*who.reserve(prefix, "warm", lines(0), start, grace_ms))
    reserve_us = settle_us = 0.0
    if steady:
        for i in range(n):
            now = start + timedelta(milliseconds=i * 90)
            u0, _ = _usec(client)
            run(*who.reserve(prefix, f"d{i}", lines(i), now, grace_ms))
            u1, _ = _usec(client)
            run(*who.settle(prefix, _handle(f"d{i}", lines(i), now), now, grace_ms))
            u2, _ = _usec(client)
            reserve_us += u1 - u0
            settle_us += u2 - u1
        return reserve_us / n, settle_us / n
    u0, c0 = _usec(client)
    for i in range(n):
        run(*who.reserve(prefix, f"d{i}", lines(i), start, grace_ms))
    u1, c1 = _usec(client)
    for i in range(n):
        run(*who.settle(prefix, _handle(f"d{i}", lines(i), start), start, grace_ms))
    u2, c2 = _usec(client)
    return (u1 - u0) / (c1 - c0), (u2 - u1) / (c2 - c1)


@dataclass(frozen=True)
class Row:
    n_budgets: int
    concurrent: bool
    steady: bool
    figures: dict[str, tuple[float, float]]  # contender -> (reserve µs, settle µs)


CASES = ((1, False, False), (3, False, False), (3, True, False), (3, False, True))


def measure(n: int, rounds: int, cases: tuple[tuple[int, bool, bool], ...] = CASES) -> list[Row]:
    import redis

    started = bench_stores.private_redis()
    if started is None:
        raise SystemExit("no redis-server on PATH")
    process, url = started
    client = redis.Redis.from_url(url)
    try:
        rows = []
        for n_budgets, concurrent, steady in cases:
            runs: dict[str, list[tuple[float, float]]] = {c.name: [] for c in CONTENDERS}
            for r in range(rounds):
                order = CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]
                for who in order:
                    runs[who.name].append(server_us(client, who, n_budgets, concurrent, n, steady))
            figures = {
                name: (
                    statistics.median(x[0] for x in got),
                    statistics.median(x[1] for x in got),
                )
                for name, got in runs.items()
            }
            rows.append(Row(n_budgets, concurrent, steady, figures))
        return rows
    finally:
        client.close()
        process.kill()
        process.wait()


def _callgrind_redis(out_dir: str) -> tuple[Any, str]:
    """A private redis-server under callgrind (stopped by its PID), and its URL."""
    import shutil

    if shutil.which("valgrind") is None or shutil.which("redis-server") is None:
        raise SystemExit("--valgrind needs valgrind and redis-server on PATH")
    wrapper = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/cg.%p")
    started = bench_stores.private_redis(wrapper, ("--hz", "1"), start_timeout_s=60)
    if started is None:  # --hz 1: fewer timer ticks inside the counts
        raise SystemExit("redis-server did not start under valgrind")
    return started


def _counted(
    pid: int, out_dir: str, calls: Callable[[], None], keep: list[Path] | None = None
) -> int:
    """Instructions the server ran during ``calls`` (zero the count, run, dump, read);
    ``keep`` collects the dump's path (else it is only read)."""
    import re
    import subprocess
    from pathlib import Path

    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(["callgrind_control", "-z", str(pid)], **quiet)  # type: ignore[call-overload]
    calls()
    before = set(Path(out_dir).glob(f"cg.{pid}.*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], **quiet)  # type: ignore[call-overload]
    (dump,) = set(Path(out_dir).glob(f"cg.{pid}.*")) - before
    found = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(), re.M)
    assert found is not None, dump
    if keep is not None:
        keep.append(dump)
    return int(found.group(1))


def _split_rows(f: dict[str, int]) -> list[tuple[str, int]]:
    """Where a script call's instructions go, from redis-server functions' inclusive
    counts (the Lua interpreter's own functions are static, without symbols)."""
    commands, to_lua = f["scriptCall"], f.get("parseReply", 0) + f.get("freeLuaRedisArgv", 0)
    return [
        ("reading the command, replying (outside the script)",
         f["processInputBuffer"] - f["luaCallFunction"]),
        ("calling the script: KEYS/ARGV tables, its reply", f["luaCallFunction"] - f["lua_pcall"]),
        ("Lua: bytecode, struct/string functions, redis.call's arguments",
         f["lua_pcall"] - commands - to_lua),
        ("redis.call's replies into Lua values", to_lua),
        ("the commands themselves (HMGET, HSET, ZADD, ...)", commands),
    ]  # fmt: skip


def split(n: int) -> None:
    """Print where one reserve and one settle (3 budgets, one instant) spend their
    instructions, from callgrind's inclusive counts per function."""
    import re
    import subprocess
    import tempfile

    import redis

    with tempfile.TemporaryDirectory() as out_dir:
        process, url = _callgrind_redis(out_dir)
        client = redis.Redis.from_url(url, socket_timeout=120)
        try:
            dumps: list[Path] = []
            reserves, settles = _steps(client, CONTENDERS[1], 3, False, n, False)
            _counted(process.pid, out_dir, reserves, dumps)
            _counted(process.pid, out_dir, settles, dumps)
            for step, dump in zip(("reserve", "settle"), dumps, strict=True):
                text = subprocess.run(
                    ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(dump)],
                    capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                inclusive = {
                    m.group(2): int(m.group(1).replace(",", ""))
                    for m in re.finditer(r"^\s*([\d,]+) \([^)]*\)\s+\?\?\?:(\w+) ", text, re.M)
                }
                rows = _split_rows(inclusive)
                total = sum(count for _, count in rows) / n
                print(f"{step} (3 budgets, one instant): {total / 1000:.0f}k instructions a call")
                for label, count in rows:
                    print(f"  {count / n / 1000:6.1f}k  {label}")
        finally:
            client.close()
            process.terminate()
            process.wait()


def instructions(n: int, cases: tuple[tuple[int, bool, bool], ...] = CASES) -> list[Row]:
    """Server instructions (thousands) per reserve and per settle, each contender alone."""
    import tempfile

    import redis

    with tempfile.TemporaryDirectory() as out_dir:
        process, url = _callgrind_redis(out_dir)
        client = redis.Redis.from_url(url, socket_timeout=120)
        try:
            idle = _counted(process.pid, out_dir, lambda: None)
            rows = []
            for n_budgets, concurrent, steady in cases:
                figures = {}
                for who in CONTENDERS:
                    reserves, settles = _steps(client, who, n_budgets, concurrent, n, steady)
                    r = _counted(process.pid, out_dir, reserves)
                    s = _counted(process.pid, out_dir, settles)
                    figures[who.name] = ((r - idle) / n / 1000, (s - idle) / n / 1000)
                rows.append(Row(n_budgets, concurrent, steady, figures))
            return rows
        finally:
            client.close()
            process.terminate()
            process.wait()


def _steps(
    client: Any, who: Contender, n_budgets: int, concurrent: bool, n: int, steady: bool
) -> tuple[Callable[[], None], Callable[[], None]]:
    """``n`` decisions' reserves, then their settles, as two calls (after a warm-up)."""
    sha = client.script_load(who.script)
    prefix = f"lb{uuid.uuid4().hex[:8]}:"
    grace_ms = 60_000 if steady else 600_000
    start = datetime.now(UTC)

    def lines(i: int) -> list[Line]:
        chosen = bench_stores.lines_for(0, i)[:n_budgets]
        return [*chosen, bench_stores.in_flight_line()] if concurrent else chosen

    def at(i: int) -> datetime:
        return start + timedelta(milliseconds=i * 90) if steady else start

    def run(keys: list[str], args: list[Any]) -> None:
        client.evalsha(sha, len(keys), *keys, *args)

    for i in range(-20, 0):  # warm up: counters made, the script compiled
        run(*who.reserve(prefix, f"w{i}", lines(i), at(i), grace_ms))
        run(*who.settle(prefix, _handle(f"w{i}", lines(i), at(i)), at(i), grace_ms))
    reserves = [who.reserve(prefix, f"d{i}", lines(i), at(i), grace_ms) for i in range(n)]
    settles = [
        who.settle(prefix, _handle(f"d{i}", lines(i), at(i)), at(i), grace_ms) for i in range(n)
    ]

    def reserve_all() -> None:
        for call in reserves:
            run(*call)

    def settle_all() -> None:
        for call in settles:
            run(*call)

    return reserve_all, settle_all


def print_table(rows: list[Row], n: int, rounds: int, unit: str = "µs") -> None:
    if unit == "µs":
        print(
            f"Redis server time per call (INFO commandstats, private server, {n} decisions, "
            f"median of {rounds} alternating rounds)"
        )
    else:
        print(f"Redis server instructions per call ({unit}: callgrind, {n} decisions each)")
    header = (
        f"{'budgets':>8}{'concurrent':>11}{'clock':>8}{'0.1.0 reserve':>15}{'settle':>9}"
        f"{'now reserve':>13}{'settle':>9}{'ratio':>8}"
    )
    print(header)
    print("-" * len(header))
    w = len(unit)
    for row in rows:
        old, new = row.figures["0.1.0"], row.figures["now"]
        ratio = (old[0] + old[1]) / (new[0] + new[1])
        print(
            f"{row.n_budgets:>8}{'yes' if row.concurrent else 'no':>11}"
            f"{'steady' if row.steady else 'fixed':>8}{old[0]:>{15 - w}.1f}{unit}"
            f"{old[1]:>{9 - w}.1f}{unit}{new[0]:>{13 - w}.1f}{unit}{new[1]:>{9 - w}.1f}{unit}"
            f"{ratio:>7.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--valgrind", action="store_true", help="count instructions instead")
    parser.add_argument(
        "--split", action="store_true", help="where a call's instructions go (callgrind)"
    )
    options = parser.parse_args()
    if options.split:
        split(min(options.decisions, 300))
    elif options.valgrind:
        n = min(options.decisions, 300)  # valgrind runs the server ~50x slower
        print_table(instructions(n), n, 1, "k")
    else:
        print_table(measure(options.decisions, options.rounds), options.decisions, options.rounds)


if __name__ == "__main__":
    main()
