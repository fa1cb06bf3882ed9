"""Budget stores: where spend is reserved, settled and counted.

``open_store(spec)`` gives the in-process :class:`MemoryStore` (the default) or
a :class:`~policyd.stores.redis.RedisStore` for a ``redis://`` URL. Redis is
imported only when a Redis store is opened.
"""

from policyd.stores.base import (
    DEFAULT_KEY_PREFIX,
    Store,
    StoreError,
    StoreUnavailable,
)
from policyd.stores.factory import open_store
from policyd.stores.memory import MemoryStore

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "MemoryStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]
