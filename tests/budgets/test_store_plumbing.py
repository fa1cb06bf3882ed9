"""Opening stores, Redis key layout and expiry, and what a user sees when a spec is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode

import pytest
import redis
from budget_helpers import NOW
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_helpers import PATIENT

from policyd.budgets import Amount, Limit, Line, Window
from policyd.stores import MemoryStore, StoreError, open_store
from policyd.stores.redis import RedisStore
from policyd.stores.redis_codec import counter_keys, encode_name
from policyd.stores.redis_options import URL_OPTIONS, url_options

DAY = Window("calendar_day")
MINUTE = Window("rolling", rolling_s=60)


def line(budget: str = "daily", key: str = "acme", window: Window = DAY) -> Line:
    return Line(budget, key, window, Limit(usd_micros=10_000), Amount(100, 1, 1), True, (0.5,))


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def keys_under(client: redis.Redis, prefix: str) -> dict[str, int]:
    return {k.decode(): client.pttl(k) for k in client.scan_iter(match=prefix + "*")}


def test_every_redis_key_is_prefixed_tagged_and_expires(
    redis_url: str, redis_prefix: str, client: redis.Redis
) -> None:
    store = open_store(redis_url, key_prefix=redis_prefix, **PATIENT)
    first = store.reserve("d1", [line(), line("rate", window=MINUTE)], NOW, ttl_s=60)
    store.settle(first, Amount(50, 1, 1), NOW)
    store.reserve("d2", [line()], NOW, ttl_s=60)  # left to expire
    later = NOW + timedelta(minutes=2)
    store.settle(store.reserve("d3", [line()], later, ttl_s=60), None, later)
    keys = keys_under(client, redis_prefix)
    assert sorted(keys) == sorted(
        f"{redis_prefix}{{{counter}}}:{window}:{part}"
        for counter, window in (("daily:acme", "d20261124"), ("rate:acme", "r60s"))
        for part in "hz"
    )
    twelve_hours_ms = 12 * 3600 * 1000  # NOW is noon: the day window ends at midnight
    for key, pttl in keys.items():
        assert pttl > 0, f"{key} would never expire"
        if ":d2026" in key:
            assert twelve_hours_ms < pttl <= twelve_hours_ms + (60 + 600 + 60) * 1000
        else:
            assert pttl <= (61 + 60 + 600 + 60) * 1000
    store.close()


def test_reading_usage_creates_nothing(
    redis_url: str, redis_prefix: str, client: redis.Redis
) -> None:
    store = open_store(redis_url, key_prefix=redis_prefix, **PATIENT)
    assert store.usage("daily", "nobody", DAY, NOW) == Amount()
    assert store.usage("rate", "nobody", MINUTE, NOW) == Amount()
    assert keys_under(client, redis_prefix) == {}
    store.close()


def test_key_text_is_encoded() -> None:
    assert encode_name("acme") == "acme"
    assert encode_name("a:b{c}") == "a%3Ab%7Bc%7D"
    long_name = encode_name("x" * 500)
    assert long_name.startswith("#") and len(long_name) == 33
    assert encode_name("y" * 500) != long_name
    keys = counter_keys("p:", "b", "{x}", DAY, "d20261124")
    assert keys == ("p:{b:%7Bx%7D}:d20261124:h", "p:{b:%7Bx%7D}:d20261124:z")


@pytest.mark.parametrize("spec", [None, "memory", " Memory ", ""])
def test_memory_is_the_default(spec: str | None) -> None:
    assert isinstance(open_store(spec), MemoryStore)


def test_a_store_object_is_used_as_is() -> None:
    store = MemoryStore()
    assert open_store(store) is store


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("postgres://db", "unknown store 'postgres://db'"),
        ("redis:/localhost", "unknown store"),
        (42, "store= must be 'memory', a redis:// URL or a Store object, got int"),
        ("redis://localhost:notaport/0", "bad Redis URL"),
    ],
)
def test_bad_store_specs_say_what_to_write(spec: object, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_store(spec)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"command_timeout_s": 0},
        {"connect_timeout_s": -1},
        {"retry_interval_s": -1},
        {"journal_max": -5},
    ],
)
def test_bad_store_options(options: dict[str, float]) -> None:
    with pytest.raises((StoreError, ValueError), match="must be"):
        open_store("redis://127.0.0.1:1/0", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:s3cret@127.0.0.1:1/0", "user:***@127.0.0.1:1"),
        ("redis://127.0.0.1:1/0?password=s3cret", "127.0.0.1:1/0?password=***"),  # redis-py's
        ("redis://127.0.0.1:1/0?db=0&password=s3cret&pool_size=2", "?db=0&password=***"),
    ],
)
def test_passwords_never_show(url: str, shown: str) -> None:
    store = open_store(url, connect_timeout_s=0.05)
    assert isinstance(store, RedisStore)
    result = store.reserve("d1", [line()], NOW, ttl_s=60)
    assert result.store_error is not None
    for text in (result.store_error, repr(store), str(store.stats())):
        assert "s3cret" not in text
    assert shown in repr(store)
    store.close()


@pytest.mark.parametrize("char", ["\t", "\n", "\r", "\x00", "\x7f"])
def test_a_control_character_in_the_url_is_refused_not_dropped(char: str) -> None:
    # URL parsing drops tabs and line breaks: "db=1<TAB>&pool_size=4" once served db 14
    url = f"redis://127.0.0.1:6379/?db=1{char}&pool_size=4"
    with pytest.raises(StoreError, match=r"control character \(.+\) at position 29;") as err:
        open_store(url)
    assert "127.0.0.1" not in str(err.value)  # the URL, which may hold a password, is not shown


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("REPLY_POLL_US=100", r"'REPLY_POLL_US': policyd's options are written in lower case"),
        ("Pool_Size=3", r"'Pool_Size': policyd's options are written in lower case \(pool_size\)"),
        (
            "bogus=1",
            r"'bogus': neither a policyd option \(pool_size, pool_timeout_s, reply_poll_us\)",
        ),
    ],
)
def test_an_unknown_url_parameter_is_refused_when_the_store_opens(query: str, message: str) -> None:
    # redis-py passes it to every connection it makes: each call raised a TypeError before
    with pytest.raises(StoreError, match=message):
        open_store(f"redis://127.0.0.1:1/0?{query}")


def test_redis_connection_parameters_in_the_url_still_work() -> None:
    store = open_store("redis://127.0.0.1:1/3?socket_keepalive=true&health_check_interval=5")
    assert isinstance(store, RedisStore)
    assert store._io.client.connection_pool.connection_kwargs["db"] == 3
    store.close()


def test_memory_store_forgets_finished_windows() -> None:
    store = MemoryStore(settle_grace_s=60)
    for day in range(5):
        now = NOW + timedelta(days=day)
        store.settle(store.reserve(f"d{day}", [line()], now, ttl_s=60), Amount(1, 1, 1), now)
    assert len(store) == 1  # only today's counter is left
    assert store.usage("daily", "acme", DAY, NOW + timedelta(days=4)) == Amount(1, 1, 1)


def test_one_redis_store_serves_several_event_loops(redis_url: str, redis_prefix: str) -> None:
    import asyncio

    store = open_store(redis_url, key_prefix=redis_prefix, **PATIENT)

    async def once(did: str) -> Amount:
        result = await store.areserve(did, [line()], NOW, ttl_s=60)
        await store.asettle(result, Amount(7, 0, 1), NOW)
        spent = await store.ausage("daily", "acme", DAY, NOW)
        await store.aclose()
        return spent

    assert asyncio.run(once("d1")) == Amount(7, 0, 1)
    assert asyncio.run(once("d2")) == Amount(14, 0, 2)  # a new loop gets its own client
    store.close()


_QUERY_TEXT = st.text(alphabet="abcxyz019_-.%/:", min_size=0, max_size=8)


@settings(max_examples=300)
@given(
    base=st.sampled_from(
        ["redis://h:6379/0", "rediss://u:p@h/2", "unix:///run/redis.sock", "unix://:pw@/tmp/r.s"]
    ),
    pairs=st.lists(
        st.tuples(st.sampled_from([*URL_OPTIONS, "db", "ssl_cert_reqs", "x"]), _QUERY_TEXT),
        max_size=6,
    ),
    fragment=st.sampled_from(["", "#frag"]),
)
def test_url_options_take_ours_off_and_leave_the_rest_as_written(
    base: str, pairs: list[tuple[str, str]], fragment: str
) -> None:
    query = urlencode(pairs)
    url = base + (f"?{query}" if query else "") + fragment
    rest, ours = url_options(url)
    assert ours == {k: v for k, v in parse_qsl(query, keep_blank_values=True) if k in URL_OPTIONS}
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in URL_OPTIONS]
    if not ours:
        assert rest == url  # untouched, byte for byte
    else:
        assert rest == base + (f"?{urlencode(kept)}" if kept else "") + fragment
