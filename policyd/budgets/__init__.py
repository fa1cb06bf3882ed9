"""Budget accounting that does not depend on the engine: windows and ledger types.

The budgets *stage* (in the engine) evaluates each budget's key, prices the
chosen model and calls a :class:`policyd.stores.Store` with :class:`Line`
values; everything it needs to build them and read the answers is here.
"""

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
