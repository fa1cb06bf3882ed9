"""``open_store``: the store an engine's ``store=`` argument names (memory, Redis URL, object).

Kept apart from :mod:`policyd.stores.base` so that the Redis store, which imports the
protocol and errors from ``base``, is not imported back by it (no import cycle).
"""

from __future__ import annotations

from policyd.stores.base import DEFAULT_KEY_PREFIX, Store, StoreError


def open_store(
    spec: str | Store | None = None,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    connect_timeout_s: float = 0.25,
    command_timeout_s: float = 0.25,
    journal_max: int = 10_000,
    settle_grace_s: float = 600.0,
    retry_interval_s: float = 1.0,
    pool_size: int | None = None,
    pool_timeout_s: float | None = None,
    reply_poll_us: float | None = None,
) -> Store:
    """A store from ``store=``: an instance, ``None``/``"memory"``, or a Redis URL.

    Redis options: ``key_prefix`` starts every key; the timeouts bound every
    connect and command so a dead Redis never hangs a request;
    ``journal_max`` bounds the settlements kept locally while Redis is down;
    ``retry_interval_s`` is how long after a failure calls skip Redis and fail
    fast before the next attempt. ``pool_size`` (default 100, or ``?pool_size=N`` in
    the URL) bounds the connections, and the calls in flight, per client; a call
    beyond it waits for a free connection while the pool makes progress, and fails
    as busy only when none frees up for ``pool_timeout_s`` (default: the command
    timeout). ``reply_poll_us`` (default 0, off; or ``?reply_poll_us=N``) makes sync
    calls poll for their reply without sleeping for up to N microseconds before a
    blocking read: less latency on a nearby Redis for that much CPU per call (asyncio
    calls never poll). ``settle_grace_s`` (both stores) is how long
    after a reservation expires a late settle is still counted, and how long a
    settled decision is remembered so a second settle is ignored.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "memory")):
        from policyd.stores.memory import MemoryStore

        return MemoryStore(settle_grace_s=settle_grace_s)
    if not isinstance(spec, str):
        if isinstance(spec, Store):
            return spec
        raise StoreError(
            f"store= must be 'memory', a redis:// URL or a Store object, got {type(spec).__name__}"
        )
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
    if scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        from policyd.stores.redis import RedisStore

        return RedisStore(
            spec,
            key_prefix=key_prefix,
            connect_timeout_s=connect_timeout_s,
            command_timeout_s=command_timeout_s,
            journal_max=journal_max,
            settle_grace_s=settle_grace_s,
            retry_interval_s=retry_interval_s,
            pool_size=pool_size,
            pool_timeout_s=pool_timeout_s,
            reply_poll_us=reply_poll_us,
        )
    raise StoreError(
        f"unknown store {spec!r}: use 'memory' (the default) or a Redis URL such as "
        "'redis://localhost:6379/0' ('redis+cluster://host:port' for Redis Cluster)"
    )
