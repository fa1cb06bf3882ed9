"""Options of the Redis store that come from its URL or keyword arguments: parsed and checked.

``pool_size`` and ``pool_timeout_s`` may be URL query parameters
(``redis://host:6379/0?pool_size=200``); they are taken off the URL before redis-py
sees it. Passwords are redacted from every URL shown in a message or log.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from policyd.stores.base import StoreError
from policyd.stores.pool import DEFAULT_POOL_SIZE

#: Store options that may also be given as URL query parameters (``?pool_size=200``).
URL_OPTIONS = ("pool_size", "pool_timeout_s")


def url_options(url: str) -> tuple[str, dict[str, str]]:
    """Split policyd's own query parameters (``pool_size``, ...) off a Redis URL."""
    parts = urlsplit(url)
    if not parts.query:
        return url, {}
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in URL_OPTIONS}
    if not ours:
        return url, {}
    rest = urlencode([(k, v) for k, v in pairs if k not in URL_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), ours


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


def seconds_option(label: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise StoreError(f"{label} must be a number of seconds, got {value!r}") from None


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))
