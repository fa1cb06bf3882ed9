"""`policyd check` speed: per policy at 1 to 1,000 policies, and as a whole process.

Run: python benchmarks/bench_check.py [--sizes 1,10,100,1000] [--runs 10]

Each bundle is the shipped catalog plus N copies of the support-bot policy (renamed),
written to a temporary directory. Timed, in one run so the ratios share the machine's load:

- in this process, load + structure + validate (what `policyd check` does, CEL type-checks
  included; best of 3): with libyaml's events (the default) and with PyYAML's pure parser
  (``POLICYD_PURE_YAML=1``, how every file was read before #17), and whether both give the
  same diagnostics, for these bundles and for every file of examples/broken/;
- as whole processes (median of --runs): ``policyd check policies/`` (the start-up a
  pre-commit hook pays; the per-user caches of the CEL grammar and of parsed expressions
  are warm after the first run, as they are from a hook's second run on), ``python -c
  pass`` (the interpreter alone) and ``policyd check`` on the 1,000-policy bundle. Figures
  are CPU time (user + system) of the child process, which the other users of a shared
  machine disturb far less than wall time; wall time is shown too.

``--against DIR`` (a checkout of another revision, e.g. made with ``git worktree add DIR
REV``) also times that checkout's whole processes, interleaved run by run with this one's,
and prints each pair with their ratio: before/after figures that share the machine's load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from policyd.bundle import load_bundle
from policyd.loader import forget_reads

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
BROKEN = ROOT / "examples" / "broken"


def make_bundle(directory: Path, n: int) -> None:
    shutil.copy(POLICIES / "models.yaml", directory / "models.yaml")
    shutil.copytree(POLICIES / "prompts", directory / "prompts")
    text = (POLICIES / "support-bot.yaml").read_text(encoding="utf-8")
    for i in range(n):
        body = text.replace("name: support-bot", f"name: support-bot-{i:04d}")
        (directory / f"support-bot-{i:04d}.yaml").write_text(body, encoding="utf-8")


@contextmanager
def pure_yaml() -> Iterator[None]:
    """Read every file with PyYAML's pure parser, as before libyaml was used."""
    os.environ["POLICYD_PURE_YAML"] = "1"
    try:
        yield
    finally:
        del os.environ["POLICYD_PURE_YAML"]


def best_cpu(runs: int, fn: Callable[[], object]) -> float:
    """Least CPU time of this process over ``runs`` calls, in seconds; each call reads every
    file again (the loader otherwise reuses what it read from unchanged files, as on a
    reload, and the figure would leave out reading YAML)."""
    times = []
    for _ in range(runs):
        forget_reads()
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def _diagnostics(path: Path) -> list[tuple[object, ...]]:
    forget_reads()  # read with the parser chosen now, not reused from the other one's read
    return [
        (d.file, d.line, d.column, d.severity, d.code, d.message, d.hint)
        for d in load_bundle(path).diagnostics
    ]


@dataclass(frozen=True)
class CheckRow:
    policies: int
    kb: float
    seconds: float  # libyaml, CPU, best of 3
    pure_seconds: float  # PyYAML's pure parser, CPU, best of 3
    diagnostics: int
    same_diagnostics: bool

    @property
    def ms_per_policy(self) -> float:
        return self.seconds / self.policies * 1000

    @property
    def speedup(self) -> float:
        return self.pure_seconds / self.seconds


def measure_check(n: int) -> CheckRow:
    """load_bundle on the shipped catalog + ``n`` support-bot copies, libyaml and pure."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        make_bundle(directory, n)
        size_kb = sum(p.stat().st_size for p in directory.rglob("*.yaml")) / 1024
        runs = 3 if n <= 100 else 2
        seconds = best_cpu(runs, lambda: load_bundle(directory))
        diagnostics = _diagnostics(directory)
        with pure_yaml():
            pure = best_cpu(1 if n > 100 else runs, lambda: load_bundle(directory))
            pure_diagnostics = _diagnostics(directory)
    return CheckRow(n, size_kb, seconds, pure, len(diagnostics), diagnostics == pure_diagnostics)


def broken_examples_same() -> bool:
    """Every file of examples/broken/ gives the same diagnostics with either parser."""
    fast = {p.name: _diagnostics(p) for p in sorted(BROKEN.glob("*.yaml"))}
    with pure_yaml():
        pure = {p.name: _diagnostics(p) for p in sorted(BROKEN.glob("*.yaml"))}
    return fast == pure and all(fast.values())


@dataclass(frozen=True)
class ProcessTimes:
    cpu: float  # median CPU seconds (user + system) of the child
    wall: float  # median wall seconds


def time_process(command: list[str], runs: int, root: Path = ROOT) -> ProcessTimes:
    """Median CPU and wall time of ``command`` run ``runs`` times (output discarded), with
    the policyd of the checkout ``root`` (its directory is the working directory too, which
    ``python -m`` puts first on the path)."""
    paths = [str(root), os.environ.get("PYTHONPATH", "")]  # that checkout's policyd first
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    # an installed policyd is byte-compiled: without .pyc files every run compiles every module
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    cpus, walls = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=root, capture_output=True, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return ProcessTimes(statistics.median(cpus), statistics.median(walls))


def check_command(path: Path | str) -> list[str]:
    return [sys.executable, "-m", "policyd.cli", "check", str(path)]


def measure_startup(runs: int) -> tuple[ProcessTimes, ProcessTimes]:
    """(`policyd check policies/`, `python -c pass`), interleaved so both see the same load."""
    check, bare = [], []
    for _ in range(runs):
        check.append(time_process(check_command(POLICIES), 1))
        bare.append(time_process([sys.executable, "-c", "pass"], 1))

    def median(times: list[ProcessTimes]) -> ProcessTimes:
        return ProcessTimes(
            statistics.median(t.cpu for t in times), statistics.median(t.wall for t in times)
        )

    return median(check), median(bare)


def measure_check_command(n: int, runs: int) -> ProcessTimes:
    """`policyd check` as a process on the shipped catalog + ``n`` support-bot copies."""
    with tempfile.TemporaryDirectory() as tmp:
        make_bundle(Path(tmp), n)
        return time_process(check_command(tmp), runs)


def compare(other: Path, n: int, runs: int) -> None:
    """Whole processes of this checkout and of ``other``, interleaved; medians and ratios."""
    times: dict[str, list[ProcessTimes]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        make_bundle(Path(tmp), n)
        commands = {
            "`policyd check policies/`": check_command(POLICIES.relative_to(ROOT)),
            f"`policyd check` {n:,} policies": check_command(tmp),
        }
        for _ in range(runs):
            for name, command in commands.items():
                for side, root in (("this", ROOT), ("other", other)):
                    times.setdefault(f"{name} {side}", []).append(time_process(command, 1, root))
    print(f"\nthis checkout vs {other}, interleaved, median of {runs} (CPU user+system)")
    for name in commands:
        this, that = (
            statistics.median(t.cpu for t in times[f"{name} {side}"]) for side in ("this", "other")
        )
        print(f"  {name:32} {this:6.3f} s, other {that:6.3f} s: {this / that:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="1,10,100,1000")
    parser.add_argument("--runs", type=int, default=10, help="process runs (median)")
    parser.add_argument("--against", type=Path, help="another checkout to time as well")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    load_bundle(POLICIES)  # warm: imports, the CEL parser, compiled-expression cache
    print("in process, CPU time (best of 3; pure: PyYAML's pure parser, as before #17)")
    header = (
        f"{'policies':>9} {'files KB':>9} {'check s':>8} {'ms/policy':>10} "
        f"{'pure s':>8} {'speed-up':>9} {'diagnostics':>12} {'same':>5}"
    )
    print(header)
    for n in sizes:
        row = measure_check(n)
        print(
            f"{n:>9} {row.kb:>9.0f} {row.seconds:>8.3f} {row.ms_per_policy:>10.2f} "
            f"{row.pure_seconds:>8.3f} {row.speedup:>8.1f}x {row.diagnostics:>12} "
            f"{'yes' if row.same_diagnostics else 'NO':>5}"
        )
    same = broken_examples_same()
    print(f"examples/broken/: same diagnostics with both parsers: {'yes' if same else 'NO'}")

    check, bare = measure_startup(args.runs)
    print(f"\nwhole processes, median of {args.runs} (CPU user+system / wall)")
    print(f"  `policyd check policies/`   {check.cpu:6.3f} s / {check.wall:6.3f} s")
    print(f"  `python -c pass`            {bare.cpu:6.3f} s / {bare.wall:6.3f} s")
    big = max(sizes)
    whole = measure_check_command(big, max(1, args.runs // 5))
    print(f"  `policyd check` {big:,} policies {whole.cpu:6.3f} s / {whole.wall:6.3f} s")
    if args.against:
        compare(args.against.resolve(), big, args.runs)


if __name__ == "__main__":
    main()
