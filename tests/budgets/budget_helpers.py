"""Helpers shared by the budget tests (a plain module: tests/ is not a package)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def redis_worker(
    url: str, prefix: str, worker: int, count: int, limit: int
) -> tuple[int, int, int]:
    """One process of the concurrency test: ``count`` reserve+settle rounds.

    Returns (reservations allowed, micro-dollars settled, settles that counted).
    Lives here, not in the test module, so spawned processes can import it.
    """
    from policyd.budgets import Amount
    from policyd.stores import open_store

    store = open_store(url, key_prefix=prefix, command_timeout_s=5, connect_timeout_s=5)
    allowed = settled_micros = counted = 0
    try:
        for i in range(count):
            lines = contended_lines(limit)
            result = store.reserve(f"w{worker}-{i}", lines, NOW, ttl_s=300)
            assert result.store_error is None, result.store_error
            if result.ok:
                allowed += 1
                cost = actual_cost(worker, i)
                if store.settle(result, Amount(cost, 10, 1), NOW):
                    counted += 1
                    settled_micros += cost
    finally:
        store.close()
    return allowed, settled_micros, counted


def contended_lines(limit: int) -> list[Any]:
    """A block budget admitting exactly ``limit`` requests, plus an unenforced one."""
    from policyd.budgets import Amount, Limit, Line, Window

    amount = Amount(usd_micros=50_000, tokens=10, requests=1)
    return [
        Line("shared", "all", Window("calendar_day"), Limit(requests=limit), amount, True),
        Line("watch", "all", Window("calendar_month"), Limit(usd_micros=1), amount, False),
    ]


def actual_cost(worker: int, i: int) -> int:
    """A deterministic, irregular cost per call (micro-dollars, up to the reservation)."""
    return (worker * 7919 + i * 104_729) % 50_001


class ThrowawayRedis:
    """A private ``redis-server`` on a free loopback port that a test may pause or kill."""

    def __init__(self, executable: str) -> None:
        import socket

        self.executable = executable
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Any = None

    def start(self) -> None:
        import subprocess
        import time

        import redis

        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2, socket_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def pause(self) -> None:
        import signal

        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
