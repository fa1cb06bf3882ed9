"""The Redis store's script calls, sent on a connection without redis-py's command path.

A ledger step is one ``EVALSHA``. Through redis-py's ``Script`` object it cost about as
much client CPU as the round trip itself (measured in docs/performance.md, target 4):
the pool's checkout (a queue, a ``poll`` for stale data, metrics) and release, the
command path (retry wrapper, option filtering, response callbacks) and the script's
own lookup. A :class:`Lane` (sync) or :class:`AsyncLane` keeps the connections it has
taken from the store's pool in a stack of idle ones, packs ``EVALSHA`` once and reads
the reply with the connection's own parser (hiredis when installed).

What the pool's checkout guarded against is kept: a connection goes back to the idle
stack only after a whole request and reply; on any exception in between (a timeout, a
reset, ``KeyboardInterrupt``, ``CancelledError``) it is disconnected and handed back to
the pool, so no reply is ever read by the wrong call; and an idle connection with
something to read when it is taken again (the server closed it: a restart, an idle
``timeout``, ``CLIENT KILL``) is reconnected before use, as the pool's checkout did,
instead of failing the call. The store's gate bounds calls in
flight to ``pool_size``, so a lane never holds more than the pool has; ``drain`` hands
idle connections back before the store uses the pool for anything else (pipelines,
``SCAN``). After a fork the idle stack is dropped (the child must not share sockets),
as redis-py's pool does. A ``NOSCRIPT`` reply loads the script on the same connection
and repeats the calls that got it (they did not run), as ``Script`` did.

``reply_poll_us`` (sync lane only, off by default): after sending, poll the socket
without sleeping for up to that long before the blocking read. A blocked reader is
woken by the kernel when the reply lands, which on a virtual machine costs about as
much as the round trip itself (docs/performance.md, target 4); polling trades that
much CPU per call for it. The blocking read that follows is unchanged, with its
timeout and error handling, so polling never decides what is read.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import select
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: what a check of an idle connection raises when the server has closed it
_GONE = (RedisConnectionError, RedisTimeoutError, OSError)

_pack_c: Callable[[tuple[Any, ...]], bytes] | None
try:  # what redis-py packs commands with when it is installed, called without its wrapper
    from hiredis import pack_command as _pack_c
except ImportError:  # pragma: no cover - hiredis is a dependency; redis-py's packer then
    _pack_c = None


_POLL = getattr(select, "poll", None)  # not on every platform


def poll_for_reply(sock: Any, seconds: float) -> bool:
    """Busy-poll ``sock`` until it is readable (a reply, EOF or an error to read) or
    ``seconds`` have passed; whether it became readable. Reads nothing: the caller's
    blocking read follows either way. A socket that cannot be polled (closed, or no
    ``poll`` on this platform) returns False at once."""
    if _POLL is None or sock is None:
        return False
    try:
        poller = _POLL()
        poller.register(sock, select.POLLIN)
    except (ValueError, OSError):  # closed (fileno -1) or not a socket
        return False
    clock = time.perf_counter
    deadline = clock() + seconds
    while not poller.poll(0):
        if clock() >= deadline:
            return False
    return True


class _LaneBase:
    def __init__(self, pool: Any, script: str, reply_poll_s: float = 0.0) -> None:
        self.pool = pool
        self.reply_poll_s = reply_poll_s  # the sync lane's busy-poll before a read (0: off)
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()
        self._idle: list[Any] = []
        self._pid = os.getpid()
        # redis-py before 5.3 requires a command name (ignored); later ones warn if given
        param = inspect.signature(pool.get_connection).parameters.get("command_name")
        needed = param is not None and param.default is inspect.Parameter.empty
        self._checkout_args: tuple[str, ...] = ("EVALSHA",) if needed else ()

    def _packed(self, conn: Any, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> Any:
        """The calls' ``EVALSHA`` commands, packed by the connection (one buffer, so
        one ``send``)."""
        packed: list[Any] = []
        for keys, args in calls:
            if _pack_c is not None:
                packed.append(_pack_c(("EVALSHA", self.sha, len(keys), *keys, *args)))
            else:
                packed += conn.pack_command("EVALSHA", self.sha, len(keys), *keys, *args)
        return packed if len(packed) == 1 else [b"".join(packed)]

    def _forked(self) -> None:
        """In a child process: forget the parent's connections (never close them)."""
        self._idle = []
        self._pid = os.getpid()


def _first_error(replies: list[Any]) -> ResponseError | None:
    return next((r for r in replies if isinstance(r, ResponseError)), None)


class Lane(_LaneBase):
    """Sync ``EVALSHA`` calls on held connections (see the module docstring)."""

    def call(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """One script call: its reply, or the error reply raised (the common path of
        :meth:`batch` for one call, without its lists)."""
        conn = self._take()
        try:
            self._ready(conn)
            conn.send_packed_command(self._packed(conn, ((keys, args),)))
            self._before_reading(conn)
            try:
                reply = conn.read_response()
            except NoScriptError:
                reply = self._roundtrip(conn, [(keys, args)], load=True)[0]
            except ResponseError as exc:  # an error reply, read whole: still in step
                reply = exc
        except BaseException:
            conn.disconnect()
            self.pool.release(conn)
            raise
        self._idle.append(conn)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def batch(self, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
        """Script calls pipelined in one round trip; their replies. An error reply is
        raised (the first one) after every reply has been read."""
        conn = self._take()
        try:
            self._ready(conn)
            replies = self._roundtrip(conn, calls)
            missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
            if missing:  # the script cache was flushed: load it, repeat those calls
                again = self._roundtrip(conn, [calls[i] for i in missing], load=True)
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        except BaseException:
            conn.disconnect()
            self.pool.release(conn)
            raise
        self._idle.append(conn)
        error = _first_error(replies)
        if error is not None:
            raise error
        return replies

    def _before_reading(self, conn: Any) -> None:
        """With ``reply_poll_us``: poll for the reply before the blocking read."""
        if self.reply_poll_s:
            poll_for_reply(getattr(conn, "_sock", None), self.reply_poll_s)

    def _take(self) -> Any:
        """An idle connection, else one from the pool."""
        if self._pid != os.getpid():
            self._forked()
        try:
            return self._idle.pop()
        except IndexError:
            return self.pool.get_connection(*self._checkout_args)

    @staticmethod
    def _ready(conn: Any) -> None:
        """Connect, and reconnect once a connection the server has closed, as the pool's
        checkout does (called inside the call's try, so the connection always goes back;
        a failure to connect is the call's failure, after one attempt)."""
        conn.connect()  # nothing when connected
        try:
            stale = conn.can_read()  # we never leave a reply unread: EOF or a reset
        except _GONE:
            stale = True
        if stale:
            conn.disconnect()
            conn.connect()

    def _roundtrip(
        self, conn: Any, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]], load: bool = False
    ) -> list[Any]:
        """Send the calls and read every reply (error replies as values); ``load``: first
        load the script (a call got ``NOSCRIPT``: the cache was flushed)."""
        if load:
            conn.send_command("SCRIPT", "LOAD", self.script)
            conn.read_response()
        conn.send_packed_command(self._packed(conn, calls))
        self._before_reading(conn)
        replies = []
        for _ in calls:
            try:
                replies.append(conn.read_response())
            except ResponseError as exc:  # read whole: the connection stays in step
                replies.append(exc)
        return replies

    def drain(self) -> None:
        """Hand the idle connections back to the pool (before other commands use it)."""
        if self._pid != os.getpid():
            self._forked()
        while self._idle:
            try:
                conn = self._idle.pop()
            except IndexError:  # another thread took the last one
                break
            self.pool.release(conn)


class AsyncLane(_LaneBase):
    """The asyncio twin of :class:`Lane`, for one event loop's pool."""

    async def call(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return (await self.batch([(keys, args)]))[0]

    async def batch(self, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
        conn = await self._take()
        try:
            await self._ready(conn)
            replies = await self._roundtrip(conn, calls)
            missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
            if missing:
                await conn.send_command("SCRIPT", "LOAD", self.script)
                await conn.read_response()
                again = await self._roundtrip(conn, [calls[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        except BaseException:
            await _disconnect_and_release(self.pool, conn)
            raise
        self._idle.append(conn)
        error = _first_error(replies)
        if error is not None:
            raise error
        return replies

    async def _roundtrip(
        self, conn: Any, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
    ) -> list[Any]:
        await conn.send_packed_command(self._packed(conn, calls))
        replies = []
        for _ in calls:
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies

    async def _take(self) -> Any:
        if self._pid != os.getpid():
            self._forked()
        try:
            return self._idle.pop()
        except IndexError:
            return await self.pool.get_connection(*self._checkout_args)

    @staticmethod
    async def _ready(conn: Any) -> None:
        await conn.connect()
        try:
            # redis-py 8 names it can_read (can_read_destructive is deprecated there)
            check = getattr(conn, "can_read", None) or conn.can_read_destructive
            stale = await check()
        except _GONE:
            stale = True
        if stale:
            await conn.disconnect()
            await conn.connect()

    async def drain(self) -> None:
        if self._pid != os.getpid():
            self._forked()
        while self._idle:
            try:
                conn = self._idle.pop()
            except IndexError:
                break
            await self.pool.release(conn)


async def _disconnect_and_release(pool: Any, conn: Any) -> None:
    """Close a connection whose reply may be unread, and give it back to the pool; a
    cancellation arriving meanwhile still lets the pool have it back."""
    try:
        await conn.disconnect(nowait=True)
    finally:
        await pool.release(conn)
