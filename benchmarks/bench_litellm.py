"""What PolicyRouter adds per call on top of a bare ``litellm.Router.acompletion``;
with ``--proxy``, what the policyd guardrail adds to a real LiteLLM proxy.

Run: python benchmarks/bench_litellm.py [--n 2000] [--policy support-bot]
     python benchmarks/bench_litellm.py --proxy [--n 300] [--streams 10]

Both sides call the same deployments (the policy's models, answering with
LiteLLM's ``mock_response``, so no network) with the same messages; requests
are a mix of users and tenants that the policy allows and does not cache, so
every call on both sides is one mock completion. The bare side asks for the
model the policy would pick. The two are timed interleaved in the same run;
the overhead (difference of medians) and the ratio are the figures to read,
absolute times depend on the machine. ``adecide`` alone is shown for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download

import litellm

from policyd import Engine
from policyd.integrations.litellm import PolicyRouter

ROOT = Path(__file__).resolve().parent.parent


def requests(n_users: int = 200) -> list[dict[str, Any]]:
    out = []
    for i in range(n_users):
        out.append(
            {
                "context": {
                    "tenant": {"id": f"tenant-{i % 20}", "tier": ("pro", "enterprise")[i % 2]},
                    "user": {"id": f"user-{i}", "country": "DE"},
                    "feature": "chat",
                    "tags": ["code"] if i % 3 == 0 else [],
                },
                "messages": [{"role": "user", "content": f"Question {i}: how do I export data?"}],
            }
        )
    return out


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def run(n: int, policy: str, bundle: Path) -> None:
    engine = Engine.from_path(bundle)
    models = engine.compiled.policy(policy).models
    mocks = {model_id: {"mock_response": "ok"} for model_id in models}
    policy_router = PolicyRouter(engine, policy, model_params=mocks, cache=None)
    bare = litellm.Router(
        model_list=[
            {"model_name": m, "litellm_params": {"model": info.litellm, "mock_response": "ok"}}
            for m, info in models.items()
        ],
        num_retries=0,
    )
    mix = requests()
    chosen = [
        engine.decide({**r["context"], "messages": r["messages"]}, policy=policy).model for r in mix
    ]

    def bare_call(i: int) -> Callable[[], Awaitable[Any]]:
        r = mix[i % len(mix)]
        return lambda: bare.acompletion(model=chosen[i % len(mix)], messages=r["messages"])

    def policy_call(i: int) -> Callable[[], Awaitable[Any]]:
        r = mix[i % len(mix)]
        return lambda: policy_router.acompletion(r["messages"], context=r["context"])

    def decide_call(i: int) -> Callable[[], Awaitable[Any]]:
        r = mix[i % len(mix)]

        async def call() -> None:
            decision = await engine.adecide({**r["context"], "messages": r["messages"]}, policy)
            await engine.arecord(decision, input_tokens=0, output_tokens=0, cost_usd=0.0)

        return call

    for i in range(min(200, n)):  # warm up both paths (imports, provider config, pools)
        await bare_call(i)()
        await policy_call(i)()
    samples: dict[str, list[float]] = {"bare": [], "policyd": [], "decide": []}
    for i in range(n):
        samples["bare"].append(await timed(bare_call(i)))
        samples["policyd"].append(await timed(policy_call(i)))
        samples["decide"].append(await timed(decide_call(i)))

    def row(label: str, xs: list[float]) -> str:
        med, p99 = statistics.median(xs) * 1e6, pct(xs, 0.99) * 1e6
        return f"{label:<44}{med:>12.0f}{p99:>12.0f}"

    bare_med = statistics.median(samples["bare"])
    pol_med = statistics.median(samples["policyd"])
    bare_p99, pol_p99 = pct(samples["bare"], 0.99), pct(samples["policyd"], 0.99)
    print(f"policy {policy} from {bundle}, {n} calls each, interleaved; times in µs")
    print(f"{'':<44}{'median':>12}{'p99':>12}")
    print(row("Router.acompletion (bare, mock_response)", samples["bare"]))
    print(row("PolicyRouter.acompletion (same mocks)", samples["policyd"]))
    print(row("  of which engine.adecide + arecord", samples["decide"]))
    print(
        f"{'overhead added by policyd':<44}{(pol_med - bare_med) * 1e6:>12.0f}"
        f"{(pol_p99 - bare_p99) * 1e6:>12.0f}"
    )
    print(f"{'ratio policyd / bare':<44}{pol_med / bare_med:>12.2f}{pol_p99 / bare_p99:>12.2f}")
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None,
                        help="calls per side (default 2000; 300 with --proxy)")  # fmt: skip
    parser.add_argument("--policy", default="support-bot")
    parser.add_argument("--policy-dir", type=Path, default=ROOT / "policies")
    parser.add_argument(
        "--proxy", action="store_true", help="a real LiteLLM proxy with and without the hook"
    )
    parser.add_argument(
        "--streams", type=int, default=10, help="streams per side for time to first token"
    )
    args = parser.parse_args()
    if args.proxy:
        from bench_litellm_proxy import run_proxy

        run_proxy(args.n or 300, args.streams, args.policy, args.policy_dir)
    else:
        asyncio.run(run(args.n or 2000, args.policy, args.policy_dir))


if __name__ == "__main__":
    main()
