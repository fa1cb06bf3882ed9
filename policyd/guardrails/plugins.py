"""Custom guardrails: load ``package.module:function`` at load time, call it time-limited.

A plugin is called as ``fn(text, request)`` (sync or ``async def``) and may return:

- ``True`` / ``None``: allowed; ``False``: not allowed;
- a ``str``: not allowed, with that message;
- a mapping ``{"allowed": bool, "message": str | None, "redacted_text": str | None}``;
- a :class:`PluginVerdict`.

Anything else, an exception or running past the time limit raises :class:`PluginError`,
which the guardrail stage handles according to its ``on_error``. A plugin's exception
text is not copied into the error (it might quote the text it was checking); its type is.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from policyd.errors import ConfigError, PolicydError
from policyd.guardrails._core import Finding, GuardrailConfigError

PluginFn = Callable[[str, Mapping[str, Any]], Any]

_SPEC = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
# Plugin calls in flight at once, per process. A plugin that hangs keeps its slot until it
# returns (threads cannot be killed), so hung plugins degrade to timeouts, not to new threads.
MAX_CONCURRENT_PLUGIN_CALLS = 32
_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_PLUGIN_CALLS)


@dataclass(frozen=True, slots=True)
class PluginVerdict:
    """What a plugin decided. ``redacted_text`` replaces the text when the guardrail's
    action is ``redact``; ``message`` is shown to the user (keep values out of it)."""

    allowed: bool
    message: str | None = None
    redacted_text: str | None = None

    def finding(self) -> Finding | None:
        """A ``plugin`` finding when not allowed (for traces alongside other findings)."""
        return None if self.allowed else Finding("plugin", -1, -1, "PLUGIN", None, self.message)


class PluginError(PolicydError):
    """A plugin failed at run time; ``reason`` is ``timeout``, ``exception`` or
    ``invalid_return``. Handle it with the guardrail's ``on_error``."""

    def __init__(self, reason: Literal["timeout", "exception", "invalid_return"], message: str):
        self.reason = reason
        self.message = message
        super().__init__(message)


def load_plugin(spec: str) -> PluginFn:
    """Import ``package.module:function`` (``module:Class.method`` works too).

    Every problem is a :class:`GuardrailConfigError`: a malformed spec, a module that is
    missing or fails to import, a missing attribute, something not callable with
    ``(text, request)``.
    """
    if not isinstance(spec, str) or not _SPEC.match(spec):
        raise GuardrailConfigError(
            f"plugin must look like 'package.module:function', got {spec!r}",
            hint="name the module, a colon, then the callable: myguards.pii:check",
        )
    module_name, _, attr_path = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise GuardrailConfigError(
                f"plugin module {module_name!r} not found",
                hint="install the package that provides it where the engine runs, "
                "or fix the spelling",
            ) from None
        raise GuardrailConfigError(
            f"importing plugin module {module_name!r} failed: it needs {exc.name!r}, "
            "which is not installed",
            hint=f"install {exc.name}",
        ) from None
    except Exception as exc:
        raise GuardrailConfigError(
            f"importing plugin module {module_name!r} failed: {type(exc).__name__}: {exc}",
            hint="fix the module so that it imports cleanly",
        ) from None
    target: Any = module
    for i, name in enumerate(attr_path.split(".")):
        if not hasattr(target, name):
            owner = ".".join([module_name, *attr_path.split(".")[:i]])
            close = difflib.get_close_matches(name, [n for n in dir(target) if n[0] != "_"], 1)
            raise GuardrailConfigError(
                f"plugin {spec!r}: {owner!r} has no attribute {name!r}",
                hint=f"did you mean {close[0]!r}?" if close else "check the name after ':'",
            )
        target = getattr(target, name)
    if not callable(target):
        raise GuardrailConfigError(
            f"plugin {spec!r} is a {type(target).__name__}, not a function",
            hint="point at a function taking (text, request)",
        )
    try:
        inspect.signature(target).bind("text", {})
    except TypeError:
        raise GuardrailConfigError(
            f"plugin {spec!r} cannot be called as fn(text, request)",
            hint="define it as def check(text: str, request: Mapping) -> bool | str | dict",
        ) from None
    except ValueError:  # no signature available (some builtins): trust it
        pass
    return target


def to_verdict(value: Any, name: str = "plugin") -> PluginVerdict:
    """Normalize what a plugin returned (see the module docstring) into a verdict."""
    if isinstance(value, PluginVerdict):
        return value
    if value is None or value is True:
        return PluginVerdict(True)
    if value is False:
        return PluginVerdict(False)
    if isinstance(value, str):
        return PluginVerdict(False, value)
    if isinstance(value, Mapping):
        unknown = set(value) - {"allowed", "message", "redacted_text"}
        allowed = value.get("allowed")
        message = value.get("message")
        redacted = value.get("redacted_text")
        if (
            not unknown
            and isinstance(allowed, bool)
            and isinstance(message, str | None)
            and isinstance(redacted, str | None)
        ):
            return PluginVerdict(allowed, message, redacted)
        return _invalid(name, "a mapping without a bool 'allowed' or with unknown keys")
    return _invalid(name, type(value).__name__)


def _invalid(name: str, what: str) -> PluginVerdict:
    raise PluginError(
        "invalid_return",
        f"{name} returned {what}; expected bool, None, str, "
        "{'allowed': bool, 'message': ..., 'redacted_text': ...} or PluginVerdict",
    )


def _plugin_name(fn: PluginFn) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"plugin {module}:{getattr(fn, '__qualname__', type(fn).__name__)}"


def _check_timeout(timeout_s: float) -> None:
    if not timeout_s > 0:
        raise ConfigError(f"timeout_s must be > 0, got {timeout_s!r}")


class _Call:
    """One plugin call on its own daemon thread (a hung plugin never blocks process exit)."""

    __slots__ = ("done", "error", "on_done", "value")

    def __init__(self, on_done: Callable[[], None] | None = None) -> None:
        self.done = threading.Event()
        self.on_done = on_done
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self, fn: PluginFn, text: str, request: Mapping[str, Any], timeout_s: float) -> None:
        try:
            value = fn(text, request)
            if inspect.isawaitable(value):
                import asyncio  # here, not at the top: `policyd check` never needs it

                value = asyncio.run(_bounded(value, timeout_s))
            self.value = value
        except BaseException as exc:  # reported to the caller, never raised in the thread
            self.error = exc
        finally:
            _SLOTS.release()
            self.done.set()
            if self.on_done is not None:
                # RuntimeError: the waiting event loop is gone, nobody to tell
                with contextlib.suppress(RuntimeError):
                    self.on_done()


async def _bounded(awaitable: Any, timeout_s: float) -> Any:
    import asyncio

    return await asyncio.wait_for(awaitable, timeout_s)


def _start(
    fn: PluginFn,
    text: str,
    request: Mapping[str, Any],
    timeout_s: float,
    on_done: Callable[[], None] | None = None,
) -> _Call:
    # From async code (on_done set) never block the event loop waiting for a slot.
    got = _SLOTS.acquire(timeout=timeout_s) if on_done is None else _SLOTS.acquire(blocking=False)
    if not got:
        raise PluginError(
            "timeout",
            f"{_plugin_name(fn)}: all {MAX_CONCURRENT_PLUGIN_CALLS} plugin slots are busy "
            "(plugins hanging?)",
        )
    call = _Call(on_done)
    threading.Thread(
        target=call.run, args=(fn, text, request, timeout_s), daemon=True, name="policyd-plugin"
    ).start()
    return call


def _outcome(call: _Call, fn: PluginFn, timeout_s: float) -> PluginVerdict:
    name = _plugin_name(fn)
    if not call.done.is_set():
        raise PluginError("timeout", f"{name} did not answer within {timeout_s}s")
    if isinstance(call.error, TimeoutError):
        raise PluginError("timeout", f"{name} did not answer within {timeout_s}s")
    if call.error is not None:
        raise PluginError("exception", f"{name} raised {type(call.error).__name__}") from (
            call.error
        )
    return to_verdict(call.value, name)


def run_plugin(
    fn: PluginFn, text: str, request: Mapping[str, Any], timeout_s: float
) -> PluginVerdict:
    """Call a (sync or async) plugin from synchronous code, giving up after ``timeout_s``.

    The call runs on a daemon thread; past the deadline it is abandoned (a thread cannot be
    stopped) and :class:`PluginError` ``timeout`` is raised.
    """
    _check_timeout(timeout_s)
    deadline = time.monotonic() + timeout_s
    call = _start(fn, text, request, timeout_s)
    call.done.wait(max(0.0, deadline - time.monotonic()))
    return _outcome(call, fn, timeout_s)


async def arun_plugin(
    fn: PluginFn, text: str, request: Mapping[str, Any], timeout_s: float
) -> PluginVerdict:
    """Call a plugin from async code: ``async def`` plugins run on this event loop and are
    cancelled at the deadline; sync ones run on a daemon thread, awaited without blocking."""
    import asyncio

    _check_timeout(timeout_s)
    name = _plugin_name(fn)
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    ):
        try:
            value = await asyncio.wait_for(fn(text, request), timeout_s)
        except TimeoutError:
            raise PluginError("timeout", f"{name} did not answer within {timeout_s}s") from None
        except Exception as exc:
            raise PluginError("exception", f"{name} raised {type(exc).__name__}") from exc
        return to_verdict(value, name)
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not finished.done():
            finished.set_result(None)

    def wake() -> None:
        loop.call_soon_threadsafe(settle)

    call = _start(fn, text, request, timeout_s, on_done=wake)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(finished, timeout_s)
    return _outcome(call, fn, timeout_s)
