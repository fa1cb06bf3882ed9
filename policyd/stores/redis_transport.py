"""How the Redis store reaches Redis: its clients, connection pools, gates and script calls.

Owns the connections of one :class:`~policyd.stores.redis.RedisStore`: a single server's
sync pool with its :class:`~policyd.stores.redis_lane.Lane`, or a cluster client that
redis-py routes (made lazily: it connects when created); an asyncio client per event
loop; and the gates that bound calls in flight to the pool's size, so a pool never runs
out. Every method here is a round trip and nothing else: what the calls mean, failures,
fail-fast and the journal belong to the store.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import Any

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from policyd.stores import redis_codec as codec
from policyd.stores.base import StoreError
from policyd.stores.pool import AsyncGate, Gate
from policyd.stores.redis_lane import AsyncLane, Lane
from policyd.stores.redis_options import Settings, cluster_url_problem, unknown_parameter

LUA = files("policyd.stores").joinpath("lua/ledger.lua").read_text(encoding="utf-8")


class Transport:
    """The connections and script calls of one store (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.options: dict[str, Any] = {
            "socket_connect_timeout": settings.connect_timeout_s,
            "socket_timeout": settings.command_timeout_s,
            "retry": Retry(NoBackoff(), 0),
            "max_connections": settings.pool_size,
        }
        self.gate = Gate(settings.pool_size, settings.pool_timeout_s)
        self.client: Any = None
        self.script: Any = None  # a cluster's script calls (redis-py routes them)
        self.lane: Lane | None = None  # a single server's script calls
        # asyncio clients belong to the loop that made them: (client, script, gate) per loop
        self.per_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[Any, Any, AsyncGate]
        ] = weakref.WeakKeyDictionary()
        if settings.cluster:
            problem = cluster_url_problem(settings.url)
            if problem is not None:
                raise StoreError(f"bad Redis URL {settings.shown!r}: {problem}")
            return
        try:
            pool = redis.BlockingConnectionPool.from_url(
                settings.url, timeout=settings.pool_timeout_s, **self.options
            )
            self.client = redis.Redis.from_pool(pool)
            # a connection object takes the URL's parameters: one it does not know
            # would fail every call later, so it fails here (nothing is connected)
            pool.connection_class(**pool.connection_kwargs)
        except ValueError as exc:
            raise StoreError(f"bad Redis URL {settings.shown!r}: {exc}") from None
        except TypeError as exc:
            message = unknown_parameter(exc)
            raise StoreError(f"bad Redis URL {settings.shown!r}: {message}") from None
        self.lane = Lane(pool, LUA, settings.reply_poll_s)

    @property
    def pool_waits(self) -> int:
        """Calls that had to wait for a free connection, sync and asyncio."""
        return self.gate.waited + sum(g.waited for _, _, g in self.per_loop.values())

    def sync_script(self) -> Any:
        if self.script is None:  # a cluster client connects when created: do it lazily
            from redis.cluster import RedisCluster

            self.client = RedisCluster.from_url(self.settings.url, **self.options)
            self.script = self.client.register_script(LUA)
        return self.script

    def plain_client(self) -> Any:
        """The client, for plain commands: the lane's idle connections go back to the
        pool first (a cluster client is connected)."""
        if self.lane is not None:
            self.lane.drain()
        else:
            self.sync_script()
        return self.client

    def async_pair(self) -> tuple[Any, Any, AsyncGate]:
        """This event loop's (client, script calls, gate)."""
        loop = asyncio.get_running_loop()
        pair = self.per_loop.get(loop)
        if pair is None:
            settings = self.settings
            if settings.cluster:
                from redis.asyncio.cluster import RedisCluster

                client: Any = RedisCluster.from_url(settings.url, **self.options)
            else:
                pool = redis.asyncio.BlockingConnectionPool.from_url(
                    settings.url, timeout=settings.pool_timeout_s, **self.options
                )
                client = redis.asyncio.Redis.from_pool(pool)
            gate = AsyncGate(settings.pool_size, settings.pool_timeout_s)
            calls = client.register_script(LUA) if settings.cluster else AsyncLane(pool, LUA)
            pair = self.per_loop[loop] = (client, calls, gate)
        return pair

    # -- round trips: all that differs between sync and async -------------------------------

    def call(self, call: codec.Call) -> Any:
        """One script call through the pool's gate (waits while the pool is all in use)."""
        lane = self.lane
        if lane is None:
            script = self.sync_script()
            with self.gate.enter():
                return script(keys=call.keys, args=call.args)
        gate = self.gate
        gate.acquire()
        try:
            return lane.call(call.keys, call.args)
        finally:
            gate.release()

    async def acall(self, call: codec.Call) -> Any:
        _client, calls, gate = self.async_pair()
        async with gate.enter():
            if isinstance(calls, AsyncLane):
                return await calls.call(call.keys, call.args)
            return await calls(keys=call.keys, args=call.args)

    def batch(self, calls: Sequence[codec.Call]) -> list[Any]:
        """Script calls pipelined in one round trip (not a cluster), through the gate."""
        assert self.lane is not None
        with self.gate.enter():
            return self.lane.batch([(call.keys, call.args) for call in calls])

    async def abatch(self, calls: Sequence[codec.Call]) -> list[Any]:
        _client, lane, gate = self.async_pair()
        assert isinstance(lane, AsyncLane)
        async with gate.enter():
            return await lane.batch([(call.keys, call.args) for call in calls])

    def pipe(self, fill: Callable[[Any], None]) -> list[Any]:
        """Plain commands (``fill(pipeline)`` queues them) in one round trip, through the
        gate."""
        with self.gate.enter():
            pipe = self.plain_client().pipeline(transaction=False)
            fill(pipe)
            return list(pipe.execute())

    async def apipe(self, fill: Callable[[Any], None]) -> list[Any]:
        client, calls, gate = self.async_pair()
        async with gate.enter():
            if isinstance(calls, AsyncLane):
                await calls.drain()
            pipe = client.pipeline(transaction=False)
            fill(pipe)
            return list(await pipe.execute())

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    async def aclose(self) -> None:
        pair = self.per_loop.pop(asyncio.get_running_loop(), None)
        if pair is not None:
            await pair[0].aclose()
