"""Custom guardrail plugins: resolved at load time, time-limited at run time."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from policyd.guardrails import (
    GuardrailConfigError,
    PluginError,
    PluginVerdict,
    arun_plugin,
    load_plugin,
    run_plugin,
    to_verdict,
)

PLUGIN_SOURCE = textwrap.dedent(
    """
    import asyncio
    import threading
    import time

    def no_secrets(text, request):
        return "mentions the launch" if "launch" in text else True

    async def async_check(text, request):
        await asyncio.sleep(0)
        return {"allowed": request.get("tier") != "free", "message": "paid only"}

    GATE = threading.Event()

    def gated(text, request):
        return True if GATE.wait(60) else "the gate never opened"

    def slow(text, request):
        time.sleep(float(text))
        return True

    async def async_slow(text, request):
        await asyncio.sleep(float(text))
        return True

    def boom(text, request):
        raise ValueError("secret value " + text)

    def bad_return(text, request):
        return 42

    def rewrite(text, request):
        return {"allowed": True, "redacted_text": text.replace("x", "*")}

    class Checks:
        @staticmethod
        def upper(text, request):
            return text.isupper()

    NOT_CALLABLE = 3

    def one_arg(text):
        return True
    """
)


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real module on sys.path, with a fresh name so no test sees another's import."""
    name = f"gr_plugins_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_load_and_run_a_sync_plugin(plugin_module: str) -> None:
    fn = load_plugin(f"{plugin_module}:no_secrets")
    assert run_plugin(fn, "hello", {}, 1.0) == PluginVerdict(True)
    assert run_plugin(fn, "the launch date", {}, 1.0) == PluginVerdict(False, "mentions the launch")


def test_async_plugin_runs_from_sync_and_async_code(plugin_module: str) -> None:
    fn = load_plugin(f"{plugin_module}:async_check")
    assert run_plugin(fn, "x", {"tier": "free"}, 1.0) == PluginVerdict(False, "paid only")
    verdict = asyncio.run(arun_plugin(fn, "x", {"tier": "pro"}, 1.0))
    assert verdict == PluginVerdict(True, "paid only")


async def test_sync_plugin_from_async_code_does_not_block_the_loop(plugin_module: str) -> None:
    fn = load_plugin(f"{plugin_module}:gated")

    async def ticker() -> None:  # only runs if the loop is free while the plugin waits
        for _ in range(5):
            await asyncio.sleep(0.01)
        sys.modules[plugin_module].GATE.set()

    task = asyncio.create_task(ticker())
    assert await arun_plugin(fn, "", {}, 120.0) == PluginVerdict(True)
    await task


def test_class_attribute_path(plugin_module: str) -> None:
    fn = load_plugin(f"{plugin_module}:Checks.upper")
    assert run_plugin(fn, "LOUD", {}, 1.0).allowed
    assert not run_plugin(fn, "quiet", {}, 1.0).allowed


@pytest.mark.parametrize("name", ["slow", "async_slow"])
def test_slow_plugin_times_out(plugin_module: str, name: str) -> None:
    fn = load_plugin(f"{plugin_module}:{name}")
    t0 = time.perf_counter()
    with pytest.raises(PluginError) as err:
        run_plugin(fn, "5", {}, 0.1)
    assert err.value.reason == "timeout"
    assert time.perf_counter() - t0 < 4.0  # gave up long before the plugin's 5 s ended


@pytest.mark.parametrize("name", ["slow", "async_slow"])
async def test_slow_plugin_times_out_in_async_code(plugin_module: str, name: str) -> None:
    fn = load_plugin(f"{plugin_module}:{name}")
    t0 = time.perf_counter()
    with pytest.raises(PluginError) as err:
        await arun_plugin(fn, "5", {}, 0.1)
    assert err.value.reason == "timeout"
    assert time.perf_counter() - t0 < 4.0  # gave up long before the plugin's 5 s ended


@pytest.mark.parametrize("runner", ["sync", "async"])
def test_plugin_exception_is_reported_without_its_message(plugin_module: str, runner: str) -> None:
    fn = load_plugin(f"{plugin_module}:boom")
    with pytest.raises(PluginError) as err:
        if runner == "sync":
            run_plugin(fn, "4111111111111111", {}, 1.0)
        else:
            asyncio.run(arun_plugin(fn, "4111111111111111", {}, 1.0))
    assert err.value.reason == "exception"
    assert "ValueError" in err.value.message and "4111" not in err.value.message
    assert isinstance(err.value.__cause__, ValueError)  # still there for the app's own logs


def test_plugin_bad_return_is_an_error(plugin_module: str) -> None:
    fn = load_plugin(f"{plugin_module}:bad_return")
    with pytest.raises(PluginError) as err:
        run_plugin(fn, "x", {}, 1.0)
    assert err.value.reason == "invalid_return" and "int" in err.value.message


def test_plugin_may_rewrite_the_text(plugin_module: str) -> None:
    fn = load_plugin(f"{plugin_module}:rewrite")
    assert run_plugin(fn, "xox", {}, 1.0) == PluginVerdict(True, None, "*o*")


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (True, PluginVerdict(True)),
        (None, PluginVerdict(True)),
        (False, PluginVerdict(False)),
        ("no", PluginVerdict(False, "no")),
        ({"allowed": False}, PluginVerdict(False)),
        ({"allowed": True, "message": "m", "redacted_text": "r"}, PluginVerdict(True, "m", "r")),
        (PluginVerdict(False, "x"), PluginVerdict(False, "x")),
    ],
)
def test_what_a_plugin_may_return(value: object, verdict: PluginVerdict) -> None:
    assert to_verdict(value) == verdict


@pytest.mark.parametrize(
    "value", [1, 0, [], {"allowed": "yes"}, {"allowed": True, "extra": 1}, {"message": "m"}]
)
def test_what_a_plugin_may_not_return(value: object) -> None:
    with pytest.raises(PluginError, match="expected bool"):
        to_verdict(value)


def test_blocked_verdict_becomes_a_finding() -> None:
    finding = PluginVerdict(False, "nope").finding()
    assert finding is not None and (finding.kind, finding.label, finding.detail) == (
        "plugin",
        "PLUGIN",
        "nope",
    )
    assert PluginVerdict(True).finding() is None


@pytest.mark.parametrize(
    ("spec", "message", "hint"),
    [
        ("no_colon", "must look like 'package.module:function'", "colon"),
        ("a:b:c", "must look like", "colon"),
        ("policyd_missing_mod_xyz:fn", "module 'policyd_missing_mod_xyz' not found", "install"),
        ("{mod}:no_secret", "has no attribute 'no_secret'", "no_secrets"),
        ("{mod}:NOT_CALLABLE", "is a int, not a function", "(text, request)"),
        ("{mod}:one_arg", "cannot be called as fn(text, request)", "def check"),
        ("{mod}:Checks.uper", "'{mod}.Checks' has no attribute 'uper'", "upper"),
    ],
)
def test_plugin_load_errors_say_what_and_how(
    plugin_module: str, spec: str, message: str, hint: str
) -> None:
    with pytest.raises(GuardrailConfigError) as err:
        load_plugin(spec.format(mod=plugin_module))
    assert message.format(mod=plugin_module) in err.value.message
    assert err.value.hint is not None and hint in err.value.hint


def test_module_that_fails_to_import_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"gr_broken_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import gr_not_installed_dependency_xyz\n")
    (tmp_path / f"{name}_syntax.py").write_text("def oops(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(GuardrailConfigError, match="needs 'gr_not_installed_dependency_xyz'"):
        load_plugin(f"{name}:fn")
    with pytest.raises(GuardrailConfigError, match="SyntaxError"):
        load_plugin(f"{name}_syntax:fn")


def test_timeout_must_be_positive(plugin_module: str) -> None:
    fn: Callable[..., object] = load_plugin(f"{plugin_module}:no_secrets")
    with pytest.raises(ValueError):
        run_plugin(fn, "x", {}, 0)


def test_hung_plugins_use_up_slots_then_calls_fail_fast(
    plugin_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from policyd.guardrails import plugins

    monkeypatch.setattr(plugins, "_SLOTS", threading.BoundedSemaphore(1))
    gated = load_plugin(f"{plugin_module}:gated")
    with pytest.raises(PluginError, match="did not answer"):
        run_plugin(gated, "", {}, 0.05)  # keeps its slot until the gate opens
    fn = load_plugin(f"{plugin_module}:slow")
    with pytest.raises(PluginError, match="slots are busy"):
        asyncio.run(arun_plugin(fn, "0", {}, 1.0))
    sys.modules[plugin_module].GATE.set()
    slots = plugins._SLOTS
    assert slots.acquire(timeout=30)  # the hung call returns and frees its slot
    slots.release()
    assert run_plugin(fn, "0", {}, 1.0).allowed
