"""How `policyd check` time grows with bundle size: 1, 10, 100 and 1,000 policies.

Run: python benchmarks/bench_check.py [--sizes 1,10,100,1000]

Each bundle is the shipped catalog plus N copies of the support-bot policy (renamed),
written to a temporary directory. Timed: load + structure + validate (CEL type-checks
included) — what `policyd check` does — in this process (best of 3), and one run of
the real `policyd check` command for the shipped bundle, start-up included.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from policyd.bundle import load_bundle

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"


def make_bundle(directory: Path, n: int) -> None:
    shutil.copy(POLICIES / "models.yaml", directory / "models.yaml")
    shutil.copytree(POLICIES / "prompts", directory / "prompts")
    text = (POLICIES / "support-bot.yaml").read_text(encoding="utf-8")
    for i in range(n):
        body = text.replace("name: support-bot", f"name: support-bot-{i:04d}")
        (directory / f"support-bot-{i:04d}.yaml").write_text(body, encoding="utf-8")


def best_of(runs: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,100,1000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    load_bundle(POLICIES)  # warm: parser tables, imports
    print(f"{'policies':>9} {'files KB':>9} {'check s':>9} {'ms/policy':>10} {'diagnostics':>12}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            make_bundle(directory, n)
            size_kb = sum(p.stat().st_size for p in directory.rglob("*.yaml")) / 1024
            bundle = load_bundle(directory)
            seconds = best_of(3 if n <= 100 else 1, lambda d=directory: load_bundle(d))
            print(
                f"{n:>9} {size_kb:>9.0f} {seconds:>9.3f} {seconds / n * 1000:>10.2f} "
                f"{len(bundle.diagnostics):>12}"
            )
    command = [sys.executable, "-m", "policyd.cli", "check", str(POLICIES)]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    print(
        f"\n`policyd check policies/` as a command, start-up included: "
        f"{time.perf_counter() - start:.2f} s"
    )


if __name__ == "__main__":
    main()
