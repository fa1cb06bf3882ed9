"""Options of the Redis store that come from its URL or keyword arguments: parsed and checked.

``pool_size``, ``pool_timeout_s`` and ``reply_poll_us`` may be URL query parameters
(``redis://host:6379/0?pool_size=200``); they are taken off the URL before redis-py
sees it. Passwords are redacted from every URL shown in a message or log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from policyd.stores.base import StoreError
from policyd.stores.pool import DEFAULT_POOL_SIZE

#: Store options that may also be given as URL query parameters (``?pool_size=200``).
URL_OPTIONS = ("pool_size", "pool_timeout_s", "reply_poll_us")

#: the longest ``reply_poll_us`` accepted: polling longer than a slow round trip only
#: burns CPU
MAX_REPLY_POLL_US = 10_000


@dataclass(frozen=True)
class Settings:
    """A Redis store's connection settings, checked: what :func:`settings` returns."""

    url: str  # for redis-py: policyd's options and ``+cluster`` taken off
    shown: str  # for messages and logs: the password redacted
    cluster: bool
    connect_timeout_s: float
    command_timeout_s: float
    pool_size: int
    pool_timeout_s: float
    reply_poll_s: float


def settings(
    url: str,
    *,
    connect_timeout_s: float,
    command_timeout_s: float,
    pool_size: int | None,
    pool_timeout_s: float | None,
    reply_poll_us: float | None,
) -> Settings:
    """Check a store's URL and connection options (keywords win over URL parameters)."""
    url, from_url = url_options(url)
    reply_poll_s = reply_poll_option(
        reply_poll_us if reply_poll_us is not None else from_url.get("reply_poll_us")
    )
    size = pool_size_option(pool_size if pool_size is not None else from_url.get("pool_size"))
    if pool_timeout_s is None:
        pool_timeout_s = seconds_option("pool_timeout_s", from_url.get("pool_timeout_s"))
    if pool_timeout_s is None:
        pool_timeout_s = command_timeout_s
    positive_seconds(
        connect_timeout_s=connect_timeout_s,
        command_timeout_s=command_timeout_s,
        pool_timeout_s=pool_timeout_s,
    )
    scheme, _, rest = url.partition("://")
    return Settings(
        url=f"{scheme.lower().removesuffix('+cluster')}://{rest}",
        shown=redact(url),
        cluster=scheme.lower().endswith("+cluster"),
        connect_timeout_s=connect_timeout_s,
        command_timeout_s=command_timeout_s,
        pool_size=size,
        pool_timeout_s=pool_timeout_s,
        reply_poll_s=reply_poll_s,
    )


def positive_seconds(**values: float) -> None:
    for label, value in values.items():
        if not value > 0:
            raise StoreError(f"{label} must be a positive number of seconds, got {value!r}")


def url_options(url: str) -> tuple[str, dict[str, str]]:
    """Split policyd's own query parameters (``pool_size``, ...) off a Redis URL.

    A URL with a control character is refused: URL parsing drops tabs and line breaks
    silently (``db=1<TAB>`` would be read as another database once rebuilt), and one
    pasted into a config is a mistake to show, not to guess around."""
    _refuse_control_characters(url)
    query = urlsplit(url).query
    if not query:
        return url, {}
    pairs = parse_qsl(query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in URL_OPTIONS}
    if not ours:
        return url, {}
    # only the query is rewritten: urlunsplit would turn unix:///path into unix:/path
    start = url.index("?") + 1
    rest = urlencode([(k, v) for k, v in pairs if k not in URL_OPTIONS])
    end = start + len(query)
    return (url[:start] + rest if rest else url[: start - 1]) + url[end:], ours


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _refuse_control_characters(url: str) -> None:
    bad = _CONTROL.search(url)
    if bad is not None:
        raise StoreError(
            f"the Redis URL has a control character ({bad.group()!r}) at position "
            f"{bad.start() + 1}; remove it (a tab or line break pasted with the URL?)"
        )


def pool_size_option(value: int | str | None) -> int:
    if value is None:
        return DEFAULT_POOL_SIZE
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if isinstance(value, bool) or size < 1 or size > 100_000:
        raise StoreError(
            f"pool_size must be a whole number from 1 to 100000, got {value!r} "
            "(e.g. redis://host:6379/0?pool_size=200)"
        )
    return size


def reply_poll_option(value: float | str | None) -> float:
    """``reply_poll_us`` (microseconds, 0 = off) as seconds."""
    if value is None:
        return 0.0
    try:
        us = float(value)
    except (TypeError, ValueError):
        us = -1.0
    if isinstance(value, bool) or not 0 <= us <= MAX_REPLY_POLL_US:
        raise StoreError(
            f"reply_poll_us must be a number of microseconds from 0 (off) to "
            f"{MAX_REPLY_POLL_US}, got {value!r} (e.g. redis://host:6379/0?reply_poll_us=200)"
        )
    return us / 1e6 if us else 0.0  # -0 is off, shown as 0


def seconds_option(label: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise StoreError(f"{label} must be a number of seconds, got {value!r}") from None


def redact(url: str) -> str:
    """The URL without its password (in the address, or a ``password=`` parameter, which
    redis-py also accepts), for messages and logs."""
    url = _PASSWORD_PARAMETER.sub(r"\1***", url)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


_PASSWORD_PARAMETER = re.compile(r"(?i)([?&;]password=)[^&;#]*")


def unknown_parameter(exc: TypeError) -> str:
    """The message for a URL parameter no Redis connection takes (its name only)."""
    found = re.search(r"argument '([^']*)'", str(exc))
    return _unknown(found.group(1) if found else "?")


def _unknown(name: str) -> str:
    if name.lower() in URL_OPTIONS and name not in URL_OPTIONS:
        why = f"policyd's options are written in lower case ({name.lower()})"
    else:
        ours = ", ".join(URL_OPTIONS)
        why = f"neither a policyd option ({ours}) nor one a Redis connection takes"
    return f"unknown URL parameter {name!r}: {why}"


def cluster_url_problem(url: str) -> str | None:
    """What is wrong with a Redis Cluster URL (policyd's options taken off), or None.

    redis-py's cluster client drops query parameters its connections do not take without
    a word (a misspelt ``ssl_cert_reqs`` would go unnoticed) and refuses a database other
    than 0 only when it first connects; both are said when the store opens."""
    from redis.cluster import REDIS_ALLOWED_KEYS
    from redis.connection import parse_url

    try:
        options = parse_url(url)
    except ValueError as exc:
        return str(exc)
    unknown = sorted(k for k in options if k not in REDIS_ALLOWED_KEYS)
    if unknown:
        return _unknown(unknown[0])
    if options.get("db", 0) != 0:
        return "a Redis Cluster has only database 0: remove the /N or ?db=N"
    return None
