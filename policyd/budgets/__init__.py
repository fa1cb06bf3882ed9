"""Budget accounting that does not depend on the engine: windows and ledger types.

The budgets *stage* (in the engine) evaluates each budget's key, prices the
chosen model and calls a :class:`policyd.stores.Store` with :class:`Line`
values; everything it needs to build them and read the answers is here.

Each name is imported from its module on first use (PEP 562): ``policyd check`` reads
:mod:`policyd.budgets.histogram` and needs neither the ledger nor the windows.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policyd.budgets.ledger import (
        MISSING_KEY,
        Amount,
        Limit,
        Line,
        LineResult,
        ReserveResult,
    )
    from policyd.budgets.windows import Window, WindowSlot, current_window

__all__ = [
    "MISSING_KEY",
    "Amount",
    "Limit",
    "Line",
    "LineResult",
    "ReserveResult",
    "Window",
    "WindowSlot",
    "current_window",
]

_HOME = {
    **dict.fromkeys(
        ("MISSING_KEY", "Amount", "Limit", "Line", "LineResult", "ReserveResult"),
        "policyd.budgets.ledger",
    ),
    **dict.fromkeys(("Window", "WindowSlot", "current_window"), "policyd.budgets.windows"),
}


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'policyd.budgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
