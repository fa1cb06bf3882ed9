"""Real processes for the proxy tests: a LiteLLM proxy and a fake upstream on loopback.

Both are started by this process and stopped by their PID; readiness is waited for on
their health endpoints with generous timeouts (the test machine is shared and slow).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
KEY = "sk-policyd-test"
START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def litellm_command() -> Path:
    """The `litellm` proxy command of this venv. Without it the proxy tests skip, visibly,
    except under CI (the dev extra installs it there): then it is a failure."""
    import pytest

    executable = Path(sys.executable).with_name("litellm")
    if not executable.exists():
        reason = f"no litellm proxy command next to {sys.executable} (pip install -e '.[dev]')"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return executable


def stop(process: subprocess.Popen[Any]) -> None:
    """Stop a process this test started, by its PID: SIGTERM, then SIGKILL after 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@dataclass
class Upstream:
    """The fake upstream (tests/integrations/fake_upstream.py) and what it received."""

    process: subprocess.Popen[str]
    url: str

    @classmethod
    def start(cls) -> Upstream:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "fake_upstream.py")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.isdigit():
            stop(process)
            raise RuntimeError(f"the fake upstream did not start (said {line!r})")
        return cls(process, f"http://127.0.0.1:{line}")

    def requests(self) -> list[dict[str, Any]]:
        import httpx

        return list(httpx.get(f"{self.url}/_requests", timeout=30).json())

    def reset(self) -> None:
        import httpx

        httpx.post(f"{self.url}/_reset", timeout=30)

    def stop(self) -> None:
        stop(self.process)


@dataclass
class ProxyProcess:
    """A ``litellm`` proxy on 127.0.0.1 running ``config`` from ``folder``."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    folder: Path
    _log: Any = field(repr=False, default=None)

    @classmethod
    def start(cls, folder: Path, config: dict[str, Any], env: dict[str, str] | None = None
              ) -> ProxyProcess:  # fmt: skip
        executable = litellm_command()
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        port = free_port()
        full_env = {**os.environ, "LITELLM_MASTER_KEY": KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                    **(env or {})}  # fmt: skip
        log_path = folder / "proxy.log"
        log = log_path.open("w")
        process = subprocess.Popen(
            [str(executable), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
            env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
        )  # fmt: skip
        proxy = cls(process, f"http://127.0.0.1:{port}", log_path, folder, log)
        try:
            proxy.wait_until_up()
        except BaseException:
            proxy.stop()
            raise
        return proxy

    def wait_until_up(self) -> None:
        import httpx

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the proxy exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                if httpx.get(f"{self.url}/health/readiness", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the proxy did not start within {START_TIMEOUT_S:.0f} s:\n"
                           f"{self.log()[-4000:]}")  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def post(self, route: str, body: dict[str, Any], headers: dict[str, str] | None = None
             ) -> Any:  # fmt: skip
        import httpx

        sent = {"Authorization": f"Bearer {KEY}", **(headers or {})}
        return httpx.post(f"{self.url}{route}", json=body, timeout=120, headers=sent)

    def stop(self) -> None:
        stop(self.process)
        if self._log is not None:
            self._log.close()


def guardrail_entry(bundle: Path, store: str | None = None, **params: Any) -> dict[str, Any]:
    litellm_params: dict[str, Any] = {
        "guardrail": "policyd.integrations.litellm_proxy.PolicydGuardrail",
        "mode": ["pre_call", "post_call"],
        "default_on": True,
        "policy_path": str(bundle),
        **params,
    }
    if store is not None:
        litellm_params["store"] = store
    return {"guardrail_name": "policyd", "litellm_params": litellm_params}


def delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.close()


def wait_for(read: Any, ok: Any, timeout_s: float = 60.0) -> Any:
    """Poll ``read()`` until ``ok(value)``: for what the proxy does after it answered
    (logging callbacks, spend). Returns the last value read."""
    deadline = time.monotonic() + timeout_s
    value = read()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = read()
    return value
