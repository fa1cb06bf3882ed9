"""Whatever `policyd check` accepts, Engine.from_path loads and decide() runs (#11).

Numbers the engine cannot use (infinite or astronomically large prices, limits,
token counts and durations; integers of more than 4,000 digits) and prompt files
that are not regular files are refused by check with file:line:col, never a
traceback or a hang.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyd import Decision, Engine, PolicyError, RequestError
from policyd.bundle import load_bundle
from policyd.checks.prompts import MAX_PROMPT_BYTES
from policyd.loader import load_text

POLICIES = Path(__file__).resolve().parents[2] / "policies"
REQUESTS = [
    {"tenant": {"id": "t", "tier": "pro"}, "user": {"id": "u1", "country": "US"},
     "feature": "faq", "temperature": 0.0, "max_tokens": 256,
     "messages": [{"role": "user", "content": "How do I reset my password?"}]},
    {"tenant": {"id": "t", "tier": "enterprise"}, "user": {"id": "u2"}, "tags": ["code"],
     "org": {"id": "o", "plan": "team"}, "repo_files": 900, "input_tokens": 70000,
     "messages": [{"role": "user", "content": "refactor this"}]},
]  # fmt: skip

BUDGETS = [
    {"name": "tenant-usd", "key": "request.tenant.id", "window": "calendar_month",
     "limit": {"usd": 500}, "alerts": [0.5, 0.8]},
    {"name": "user-rate", "key": "request.user.id", "window": {"rolling": "1h"},
     "limit": {"requests": 600, "tokens": 2000000}, "on_exceed": {"action": "warn"}},
]  # fmt: skip


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return int(value) if isinstance(value, int) else float(value)


def _read(file: Path) -> Any:
    """A policy file's data as YAML 1.2 reads it (PyYAML would read `on:` as true)."""
    loaded = load_text(file.read_text(), str(file))
    assert not loaded.diagnostics
    return _plain(loaded.documents[0].data)


def _write(file: Path, data: Any) -> None:
    file.write_text(yaml.safe_dump(data, sort_keys=False))  # quotes 'on', 'yes', ...


def _bundle(tmp: Path) -> Path:
    """The shipped policies, with budgets added to support-bot and output limits to models."""
    root = tmp / "bundle"
    shutil.copytree(POLICIES, root)
    bot = root / "support-bot.yaml"
    data = _read(bot)
    data["budgets"] = BUDGETS
    _write(bot, data)
    models = root / "models.yaml"
    catalog = _read(models)
    for spec in catalog["models"].values():
        spec["max_output_tokens"] = 8192
    _write(models, catalog)
    return root


def _numbers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _numbers(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _numbers(v, (*path, i))]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [path]
    if isinstance(value, str) and value[:1].isdigit() and value[-1:] in ("s", "m", "h", "d"):
        return [path]  # a duration
    return []


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value


def _decide_all(engine: Engine) -> None:
    for name in engine.policies:
        for request in REQUESTS:
            try:
                decision = engine.decide(request, policy=name)
            except RequestError:
                continue
            assert isinstance(decision, Decision)
            engine.record(decision, input_tokens=10, output_tokens=10)
            engine.check_output(decision, "fine")


big_ints = st.sampled_from(
    [0, 1, 7, 2**31, 2**53, 2**53 + 1, 2**63, 2**64, 10**20, 10**300]
) | st.integers(min_value=0, max_value=10**30)
odd_floats = st.sampled_from(
    [math.inf, math.nan, 1e300, 1e20, 9e9, 1e6, 1e6 + 1, -0.0, 0.5]
) | st.floats(allow_nan=True, allow_infinity=True)
durations = st.builds(
    lambda n, unit: f"{n}{unit}",
    big_ints.filter(lambda n: n >= 0)
    | st.floats(min_value=0, max_value=1e30).map(lambda f: f"{f:f}"),
    st.sampled_from(["ms", "s", "m", "h", "d"]),
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_what_check_accepts_loads_and_decides(tmp_path: Path, data: st.DataObject) -> None:
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    root = _bundle(work)
    files = sorted(p for p in root.glob("*.yaml"))
    for _ in range(data.draw(st.integers(1, 2))):
        file = data.draw(st.sampled_from(files))
        doc = _read(file)
        path = data.draw(st.sampled_from(_numbers(doc)))
        old = doc
        for step in path:
            old = old[step]
        if isinstance(old, str):
            value = data.draw(durations)
        elif isinstance(old, int):  # keep the type, so that most mutants pass the type check
            value = data.draw(big_ints)
        else:
            value = data.draw(odd_floats | big_ints)
        _set(doc, path, value)
        _write(file, doc)
    bundle = load_bundle(root)  # `policyd check`: never raises
    try:
        engine = Engine.from_path(root, store="memory")
    except PolicyError as exc:
        assert not bundle.ok
        assert all(d.file and d.line >= 1 and d.column >= 1 for d in exc.diagnostics)
        return
    assert bundle.ok
    _decide_all(engine)
    shutil.rmtree(work)


# --------------------------------------------------------------------------- the findings

POLICY = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: p}
context: {user: {id: string}}
models:
  m: {litellm: openai/gpt-4o-mini, context_window: 128000, max_output_tokens: 4096,
      price: {input_per_mtok: 0.15, output_per_mtok: 0.6}}
tiers:
  t: {targets: [{model: m}]}
routing: {default: t, timeout: 30s}
budgets:
  - {name: b, key: request.user.id, window: calendar_day, limit: {usd: 10}}
"""

FINDINGS = [
    ("input_per_mtok: 0.15", "input_per_mtok: .inf", "input_per_mtok"),
    ("input_per_mtok: 0.15", "input_per_mtok: 1e300", "input_per_mtok"),
    ("output_per_mtok: 0.6", "output_per_mtok: .nan", "output_per_mtok"),
    ("usd: 10", "usd: .inf", "usd"),
    ("usd: 10", "usd: 1e300", "usd"),
    ("usd: 10", "usd: 1e999", "usd"),
    ("usd: 10", "tokens: 100000000000000000000", "tokens"),
    ("max_output_tokens: 4096", "max_output_tokens: 1e20", "max_output_tokens"),
    ("max_output_tokens: 4096", "max_output_tokens: 100000000000000000000", "max_output_tokens"),
    ("context_window: 128000", "context_window: " + "9" * 4301, "digits"),
    ("window: calendar_day", "window: {rolling: 99999999999999999999d}", "rolling"),
    ("timeout: 30s", "timeout: 99999999999999999999d", "timeout"),
    ("{model: m}", "{model: m, weight: 100000000000000000000}", "weight"),
]


@pytest.mark.parametrize(("old", "new", "word"), FINDINGS, ids=[f[1][:40] for f in FINDINGS])
def test_check_refuses_numbers_the_engine_cannot_use(
    tmp_path: Path, old: str, new: str, word: str
) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(POLICY.replace(old, new))
    bundle = load_bundle(file)
    errors = bundle.errors
    assert errors, new
    line = next(i for i, text in enumerate(file.read_text().splitlines(), 1) if new[:20] in text)
    assert any(d.line == line and d.column > 1 for d in errors), errors
    assert any(word in d.message for d in errors), [d.message for d in errors]
    with pytest.raises(PolicyError):
        Engine.from_path(file)


def test_the_unmutated_bundle_loads_and_decides(tmp_path: Path) -> None:
    root = _bundle(tmp_path)
    engine = Engine.from_path(root, store="memory")
    _decide_all(engine)
    decision = engine.decide(REQUESTS[0], policy="support-bot")
    assert decision.allowed and {b.name for b in decision.budgets} == {"tenant-usd", "user-rate"}


def test_the_unchanged_policy_loads(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(POLICY)
    assert load_bundle(file).ok
    Engine.from_path(file, store="memory").decide({"user": {"id": "u"}})


PROMPT_POLICY = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: p}
prompts:
  sys:
    versions:
      v1: {file: prompt.md}
"""


def _prompt_errors(tmp_path: Path) -> list[str]:
    (tmp_path / "policy.yaml").write_text(PROMPT_POLICY)
    errors = load_bundle(tmp_path / "policy.yaml").errors
    assert all(d.code == "PD210" and (d.line, d.column) == (7, 18) for d in errors), errors
    return [d.message for d in errors]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_prompt_file_that_is_a_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prompt.md").symlink_to("/dev/zero")
    assert any("not a regular file" in m for m in _prompt_errors(tmp_path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_prompt_file_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "prompt.md")
    (tmp_path / "policy.yaml").write_text(PROMPT_POLICY)
    # In a child process, so that a regression hangs only the child (bounded by the timeout).
    done = subprocess.run(
        [sys.executable, "-m", "policyd.cli", "check", str(tmp_path / "policy.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == 1, done.stderr
    assert "PD210" in done.stdout and "not a regular file" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_prompt_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prompt.md").write_bytes(b"x" * (MAX_PROMPT_BYTES + 1))
    assert any("larger than" in m for m in _prompt_errors(tmp_path))
    (tmp_path / "prompt.md").write_bytes(b"x" * MAX_PROMPT_BYTES)
    assert _prompt_errors(tmp_path) == []


def test_a_prompt_file_that_is_a_directory_or_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prompt.md").mkdir()
    assert any("not a regular file" in m for m in _prompt_errors(tmp_path))
    (tmp_path / "prompt.md").rmdir()
    (tmp_path / "prompt.md").write_bytes(b"\xff\xfe")
    assert any("UTF-8" in m for m in _prompt_errors(tmp_path))


def test_numbers_stay_finite_in_a_loaded_engine(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(POLICY.replace("usd: 10", "usd: 9000000000"))
    decision = Engine.from_path(file, store="memory").decide({"user": {"id": "u"}})
    assert decision.allowed and all(math.isfinite(b.limit_usd or 0) for b in decision.budgets)
