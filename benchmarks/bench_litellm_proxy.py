"""The policyd guardrail's cost in a real LiteLLM proxy: overhead and streaming TTFT.

Used by ``python benchmarks/bench_litellm.py --proxy``. Two ``litellm`` proxies run
on loopback in front of one fake upstream (tests/integrations/fake_upstream.py, which
answers at once, or streams 1,000 characters over 2 s): the same exported config,
one with the policyd guardrail (the shipped policy, its output guardrails included),
one without. Requests alternate between them in the same run:

- overhead: a non-streamed chat completion, median and p99 per side;
- time to first token: a streamed answer of 50 chunks of 20 characters 40 ms apart,
  from sending the request to the first chunk carrying text, median per side; once
  with the upstream's ``xxxxxxxxxxxxxxxxxxx `` chunks, once with a support answer in
  words (``prose-stream``, what a model sends).

Everything is started and stopped here by PID; absolute times depend on the machine.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integrations"))

from proxy_setup import KEY, ProxyProcess, Upstream, guardrail_entry  # noqa: E402

from policyd.integrations.litellm_export import export_config  # noqa: E402

CONTEXT = {"tenant": {"id": "bench", "tier": "pro"}, "user": {"id": "u-1"}, "feature": "chat"}
TTFT_TARGET = 2.0  # hooked TTFT / bare TTFT, with the shipped output guardrails
STREAMS = {  # row label -> what the fake upstream is asked for
    'streamed "x"*19+" " x 50, 40 ms apart': "slow-stream",
    "streamed prose, 20 chars x 50, 40 ms apart": "prose-stream",
}


def _config(bundle: Path, policy: str, upstream: str, hooked: bool) -> dict[str, Any]:
    config = export_config(bundle, policy)
    config.pop("_policy")
    config.pop("_unexpressed")
    for entry in config["model_list"]:
        params = entry["litellm_params"]
        name = str(params["model"]).split("/", 1)[-1]
        params.update(model=f"openai/{name}", api_base=f"{upstream}/v1", api_key="sk-fake")
    if hooked:
        config["guardrails"] = [guardrail_entry(bundle.resolve(), policy=policy)]
    return config


def _body(text: str, hooked: bool, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "stream": stream,
                            "messages": [{"role": "user", "content": text}]}  # fmt: skip
    if hooked:
        body["policyd_context"] = CONTEXT
    return body


def _timed(client: Any, url: str, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    response = client.post(f"{url}/v1/chat/completions", json=body)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {response.status_code}: {response.text[:300]}")
    return elapsed


def _ttft(client: Any, url: str, body: dict[str, Any]) -> float:
    import json

    started = time.perf_counter()
    first = None
    with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():  # read it all: the stream must finish
            if first is not None or not line.startswith("data: {"):
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if (choices[0].get("delta") or {}).get("content"):
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError(f"{url}: a stream without text")
    return first


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_proxy(n: int, streams: int, policy: str, bundle: Path) -> None:
    import httpx

    upstream = Upstream.start()
    proxies: dict[str, ProxyProcess] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="policyd-bench-") as tmp:
            for side in ("bare", "policyd"):
                folder = Path(tmp) / side
                folder.mkdir()
                config = _config(bundle, policy, upstream.url, side == "policyd")
                proxies[side] = ProxyProcess.start(folder, config)
            headers = {"Authorization": f"Bearer {KEY}"}
            with httpx.Client(timeout=120, headers=headers) as client:
                for i in range(min(50, n)):  # warm up both
                    for side, proxy in proxies.items():
                        _timed(client, proxy.url, _body(f"warm {i}", side == "policyd"))
                calls: dict[str, list[float]] = {"bare": [], "policyd": []}
                for i in range(n):
                    for side, proxy in proxies.items():
                        text = f"Question {i}: how do I export data?"
                        calls[side].append(
                            _timed(client, proxy.url, _body(text, side == "policyd"))
                        )
                ttft: dict[str, dict[str, list[float]]] = {
                    kind: {"bare": [], "policyd": []} for kind in STREAMS
                }
                for i in range(streams):
                    for kind, ask in STREAMS.items():
                        for side, proxy in proxies.items():
                            body = _body(f"{ask} {i}", side == "policyd", stream=True)
                            ttft[kind][side].append(_ttft(client, proxy.url, body))
    finally:
        for proxy in proxies.values():
            proxy.stop()
        upstream.stop()
    _report(n, streams, policy, calls, ttft)


def _report(
    n: int,
    streams: int,
    policy: str,
    calls: dict[str, list[float]],
    ttft: dict[str, dict[str, list[float]]],
) -> None:
    ms = 1000.0
    med = {k: statistics.median(v) * ms for k, v in calls.items()}
    p99 = {k: _pct(v, 0.99) * ms for k, v in calls.items()}
    print(f"LiteLLM proxy, policy {policy}: {n} chat calls and {streams} streams per side, "
          "interleaved; times in ms")  # fmt: skip
    print(f"{'':<48}{'median':>10}{'p99':>10}")
    print(f"{'proxy without the hook':<48}{med['bare']:>10.2f}{p99['bare']:>10.2f}")
    print(f"{'proxy with the policyd guardrail':<48}{med['policyd']:>10.2f}{p99['policyd']:>10.2f}")
    print(f"{'overhead added by policyd':<48}{med['policyd'] - med['bare']:>10.2f}"
          f"{p99['policyd'] - p99['bare']:>10.2f}")  # fmt: skip
    for label, sides in ttft.items():
        first = {k: statistics.median(v) * ms for k, v in sides.items()}
        ratio = first["policyd"] / first["bare"]
        print()
        print(f"{label:<48}{'TTFT median':>12}")
        print(f"{'without the hook':<48}{first['bare']:>12.1f}")
        print(f"{'with the hook (shipped output guardrails)':<48}{first['policyd']:>12.1f}")
        met = "met" if ratio <= TTFT_TARGET else "NOT met"
        print(f"{'ratio with / without':<48}{ratio:>12.2f}  target <= {TTFT_TARGET:g}x: {met}")
