"""Operator control: ``SIGHUP`` forcing a reload of an engine.

It takes any object with ``reload()`` (the engine), so the engine can use it without
this module importing the engine. The ``policyd watch`` loop is
:mod:`policyd.reload.watch_command`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from policyd.errors import UsageError

log = logging.getLogger("policyd")


class Reloadable(Protocol):
    """What SIGHUP reloads: the engine."""

    def reload(self) -> bool:
        """Reload; True when a new revision went live."""
        ...


# --- SIGHUP ----------------------------------------------------------------------------------


def install_sighup(engine: Reloadable) -> Callable[[], None]:
    """Reload ``engine`` on SIGHUP (in a short-lived thread); returns a function to undo it.

    Must be called from the main thread. A handler installed before is still called.
    """
    if not hasattr(signal, "SIGHUP"):
        raise UsageError("this platform has no SIGHUP; call engine.reload() instead")
    if threading.current_thread() is not threading.main_thread():
        raise UsageError("install the SIGHUP handler from the main thread")
    ref = weakref.ref(engine)
    previous = signal.getsignal(signal.SIGHUP)

    def reload_in_thread() -> None:
        target = ref()
        if target is not None:
            try:
                target.reload()
            except Exception:
                log.exception("policyd: reload on SIGHUP failed")

    def handler(signum: int, frame: Any) -> None:
        log.info("policyd: SIGHUP: reloading")
        threading.Thread(target=reload_in_thread, name="policyd-sighup", daemon=True).start()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGHUP, handler)

    def undo() -> None:
        if signal.getsignal(signal.SIGHUP) is handler:
            # from another thread this raises ValueError: leave the (harmless) handler
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGHUP, previous)

    return undo
