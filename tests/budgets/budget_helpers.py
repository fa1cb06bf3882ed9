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

    def __init__(
        self, executable: str, cluster_dir: str | None = None, unix_socket: str | None = None
    ) -> None:
        import socket

        self.executable = executable
        self.cluster_dir = cluster_dir  # set: a one-node Redis Cluster owning every slot
        self.unix_socket = unix_socket  # set: it also listens on this Unix socket
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        scheme = "redis+cluster" if cluster_dir else "redis"
        self.url = f"{scheme}://127.0.0.1:{self.port}" + ("" if cluster_dir else "/0")
        self.process: Any = None

    def start(self) -> None:
        """Start the server and wait until it answers (a cluster: until it owns every slot).

        The port was free when probed; if another process took it meanwhile the server
        exits at once, and it is started again on a new port (a few times at most).
        """
        said = b""
        for _attempt in range(5):
            started, said = self._start_once()
            if started:
                return
            self._new_port()
        raise TimeoutError(
            f"redis-server did not become ready (5 ports tried); it said: "
            f"{said.decode(errors='replace')[-2000:]}"
        )

    def _new_port(self) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        scheme = "redis+cluster" if self.cluster_dir else "redis"
        self.url = f"{scheme}://127.0.0.1:{self.port}" + ("" if self.cluster_dir else "/0")

    def _start_once(self) -> tuple[bool, bytes]:
        """(ready, what the server printed when it was not)."""
        import subprocess
        import tempfile
        import time

        import redis

        command = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        if self.unix_socket:
            command += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        if self.cluster_dir:
            command += ["--cluster-enabled", "yes", "--dir", self.cluster_dir]
            command += ["--cluster-config-file", f"nodes-{self.port}.conf"]
        with tempfile.TemporaryFile() as output:  # the server keeps its own descriptor
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
            client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.2)
            deadline = time.monotonic() + 30  # generous: the machine may be busy
            try:
                while not self._ready(client):
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        # exited (most likely the port was taken) or never ready
                        if self.process.poll() is None:
                            self.process.kill()
                        self.process.wait()
                        output.seek(0)
                        return False, output.read()
                    time.sleep(0.02)
            finally:
                client.close()
        return True, b""

    def _ready(self, client: Any) -> bool:
        import redis

        try:
            if not self.cluster_dir:
                return bool(client.ping())
            if b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO"):
                return True
            if not client.execute_command("CLUSTER", "SLOTS"):
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        except redis.RedisError:
            pass
        return False

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


def in_flight_worker(
    bundle: str, url: str, prefix: str, gauge: str, count: int
) -> tuple[int, int, int]:
    """One process of the concurrency-limit test: ``count`` decide / call / record rounds.

    Around each admitted "call" the caller counts itself in a shared Redis gauge (INCR,
    DECR) and notes the highest value it saw. Returns (admitted, refused, highest).
    """
    import time

    import redis

    from policyd import Engine

    engine = Engine.from_path(bundle, store=url, key_prefix=prefix, command_timeout_s=5)
    client = redis.Redis.from_url(url)
    admitted = refused = highest = 0
    request = {
        "tenant": {"id": "acme"},
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    try:
        for _ in range(count):
            d = engine.decide(request)
            if not d.allowed:
                assert d.blocked_by == "in-flight", d.message
                refused += 1
                continue
            admitted += 1
            highest = max(highest, int(client.incr(gauge)))
            time.sleep(0.01)  # the call itself
            client.decr(gauge)
            engine.record(d, input_tokens=5, output_tokens=5, cost_usd=0.0001)
    finally:
        client.close()
        engine.close()
    return admitted, refused, highest
