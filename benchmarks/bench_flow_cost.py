"""What driving I/O through flows costs: instructions per unit, this tree against another.

Run: ``python benchmarks/bench_flow_cost.py BASE_TREE [--redis URL]`` where BASE_TREE is a
checkout of the revision to compare with (``git worktree add /tmp/base <rev>``).

Each case runs under ``valgrind --tool=cachegrind`` (user-space instructions: the same
on a loaded machine, unlike wall time) twice per tree, for a small and a large count;
the difference divided by the difference of counts is the cost of one unit, start-up
excluded. Cases: ``decide()`` + ``record()`` of a three-budget policy on the memory
store, on Redis with the round trip replaced by its recorded reply (policyd's own
code only), and on Redis for real (redis-py included); and one chunk of a sync
``PolicyStream`` without output guardrails. ``PYTHONHASHSEED=0`` for both trees.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASE = r'''
import sys, tempfile, uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
kind, n, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "stream":
    from policyd.integrations import _litellm_stream as ls
    chunks = iter([SimpleNamespace(choices=[], usage=None) for _ in range(n)])
    def settle(state, error):
        return None
    def settle_flow(state, error):
        return None
        yield
    flows = hasattr(ls, "drain_flow")
    stream = ls.PolicyStream(None, "m", chunks, next(chunks), ls.StreamState(),
                             settle_flow if flows else settle)
    assert sum(1 for _ in stream) == n
    raise SystemExit
from policyd import Engine
where = Path(tempfile.mkdtemp())
(where / "models.yaml").write_text("""
apiVersion: policyd/v1
kind: ModelCatalog
metadata: {name: models}
models:
  small: {litellm: openai/gpt-4o-mini, context_window: 100000,
          price: {input_per_mtok: 0.15, output_per_mtok: 0.60}}
""")
(where / "policy.yaml").write_text("""
apiVersion: policyd/v1
kind: Policy
metadata: {name: p, version: "1"}
context:
  tenant: {id: string}
tiers:
  t: {targets: [{model: small}]}
routing: {default: t, timeout: 30s}
budgets:
  - {name: month, key: request.tenant.id, window: calendar_month, limit: {usd: 1000000}}
  - {name: day, key: request.tenant.id, window: calendar_day, limit: {requests: 100000000}}
  - {name: rate, key: "'all'", window: {rolling: 60s}, limit: {requests: 100000000}}
""")
now = datetime(2026, 3, 1, 12, tzinfo=UTC)
if kind == "memory":
    engine = Engine.from_path(where, clock=lambda: now)
else:
    prefix = "policyd-bench-flow:" + uuid.uuid4().hex[:8] + ":"
    engine = Engine.from_path(where, clock=lambda: now, store=url, key_prefix=prefix)
if kind == "redis-replayed":
    store = engine._runtime.store
    real, replies = store._call, {}
    def replayed(call):
        if call.args[0] not in replies:
            replies[call.args[0]] = real(call)
        return replies[call.args[0]]
    store._call = replayed
request = {"tenant": {"id": "acme"}, "max_tokens": 10,
           "messages": [{"role": "user", "content": "x"}]}
for _ in range(n + 3):
    decision = engine.decide(request)
    assert decision.allowed, decision.message
    engine.record(decision, input_tokens=5, output_tokens=7)
engine.close()
'''
CASES = {"memory": (300, 1300), "redis-replayed": (300, 1300), "redis": (300, 1300),
         "stream": (1000, 11000)}  # fmt: skip


def instructions(tree: Path, script: str, kind: str, n: int, url: str) -> int:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
    valgrind = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
    valgrind.append("--cachegrind-out-file=/dev/null")
    command = [*valgrind, sys.executable, script, kind, str(n), url]
    done = subprocess.run(
        command, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path, help="a checkout of the revision to compare with")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--cases", default=",".join(CASES))
    options = parser.parse_args()
    trees = {"base": options.base.resolve(), "this": HERE.parent}
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(CASE)
    print(f"{'case':<16}{'base':>12}{'this':>12}{'this/base':>11}   (instructions per unit)")
    for kind in options.cases.split(","):
        lo, hi = CASES[kind]
        per = {}
        for name, tree in trees.items():
            a = instructions(tree, file.name, kind, lo, options.redis)
            b = instructions(tree, file.name, kind, hi, options.redis)
            per[name] = (b - a) / (hi - lo)
        ratio = per["this"] / per["base"]
        print(f"{kind:<16}{per['base']:>12,.0f}{per['this']:>12,.0f}{ratio:>11.3f}")
    os.unlink(file.name)


if __name__ == "__main__":
    main()
