"""RedisLedger beyond the shared contract: exact arithmetic, equivalence with the in-memory
ledger, keys, failures, many processes, and guards sharing one session."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
import redis
from conftest import PaymentSessionFixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot
from redis_server import RedisServer, redis_binary, redis_server_fixture, redis_url_fixture  # noqa: F401

from spendguard import BudgetExceededError, InMemoryLedger, Money
from spendguard._errors import InvalidAmountError, LedgerDataLostError, LedgerUnavailableError
from spendguard._ledger import ServerView
from spendguard._redis_ledger import RedisLedger, from_units, to_units
from spendguard._redis_scripts import LIBRARY, REOPEN

pytestmark = pytest.mark.redis

KEY = "arn:aws:bedrock-agentcore:us-east-1:123456789012:payment-manager/pm-1/session-1"
T = 1_800_000_000.0
D = Decimal
VIEW = ServerView(D("10"), D("0"), T)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fresh(url: str, **kwargs: object) -> RedisLedger:
    return RedisLedger.from_url(url, prefix=f"test-{uuid.uuid4().hex}", **kwargs)  # type: ignore[arg-type]


# -- exact arithmetic --------------------------------------------------------------------------

_ARITH = LIBRARY + "return {add(ARGV[1], ARGV[2]), sub(ARGV[1], ARGV[2]), cmp(ARGV[1], ARGV[2])}"
_EDGES = [0, 1, -1, 10**15 - 1, 10**15, 10**15 + 1, 2**53 + 1, 10**30 - 1, 10**30, -(10**30)]
_INTS = st.one_of(st.sampled_from(_EDGES), st.integers(-(10**40), 10**40))


@FAST
@given(a=_INTS, b=_INTS)
def test_lua_arithmetic_is_exact_beyond_doubles(redis_server: RedisServer, a: int, b: int) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    added, subtracted, compared = client.eval(_ARITH, 0, str(a), str(b))
    assert (added, subtracted) == (str(a + b), str(a - b))  # canonical: no "-0", no "007"
    assert compared == (a > b) - (a < b)


@given(st.decimals(min_value=-(10**13), max_value=10**13, places=18, allow_nan=False))
def test_units_round_trip_exactly(value: Decimal) -> None:
    assert from_units(to_units(value, "amount")) == value


@pytest.mark.parametrize("bad", [D("0.0000000000000000001"), D("NaN"), D("Infinity"), D("1E-30")])
def test_amounts_the_ledger_cannot_store_exactly_are_refused(redis_url: str, bad: Decimal) -> None:
    ledger = fresh(redis_url)
    with pytest.raises(InvalidAmountError):
        ledger.reserve(KEY, "a", bad, VIEW, "external", 60, T)
    with pytest.raises(InvalidAmountError):
        ledger.reserve(KEY, "a", D(1), ServerView(bad, D(0), T), "external", 60, T)
    assert ledger.totals(KEY, None, T).available == 0  # nothing was written
    assert ledger.reserve(KEY, "h", D(1), VIEW, "external", 60, T)[0]
    with pytest.raises(InvalidAmountError):
        ledger.commit(KEY, "h", bad, T, T)
    assert ledger.totals(KEY, None, T).held == 1
    assert from_units(to_units(D("0.1000000000000000000000"), "x")) == D("0.1")


def test_bad_times_settlements_and_ttls_are_refused(redis_url: str) -> None:
    ledger = fresh(redis_url)
    for lease in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="lease_seconds"):
            ledger.reserve(KEY, "a", D(1), VIEW, "external", lease, T)
    with pytest.raises(ValueError, match="finite"):
        ledger.reserve(KEY, "a", D(1), ServerView(D(1), D(0), float("nan")), "external", 60, T)
    with pytest.raises(ValueError, match="finite"):
        ledger.commit(KEY, "a", D(1), float("inf"), T)
    with pytest.raises(ValueError, match="settlement"):
        ledger.reserve(KEY, "a", D(1), VIEW, "later", 60, T)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key_ttl"):
        fresh(redis_url, key_ttl=0)


# -- the same answers as the in-memory ledger ------------------------------------------------

_AMOUNTS = st.sampled_from(["0", "0.5", "1", "2.25", "3", "0.000000000000000001", "7"])
_VIEWS = st.none() | st.builds(
    lambda avail, spent, at, read: ServerView(
        D(avail), None if spent is None else D(spent), T + at, None if read is None else T + read
    ),
    st.sampled_from(["0", "4", "6.5", "9", "10", "12"]),
    st.none() | st.sampled_from(["-1", "0", "1", "3.5", "5", "9"]),
    st.integers(0, 8),
    st.none() | st.integers(-1, 9),  # read_at: before the kept view's time means it ran ahead
)
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "commit", "release", "totals"]),
        st.integers(0, 4),  # hold id
        _AMOUNTS,
        st.sampled_from(["session", "external"]),
        _VIEWS,
        # Lease: 0 lapses at the next operation on either ledger (Redis TIME only moves on,
        # the in-memory ledger's `now` stays T); an hour never lapses during the test.
        st.sampled_from([0.0, 3600.0]),
        st.integers(-2, 10),  # evidence time
    ),
    max_size=30,
)


def _apply(ledger: InMemoryLedger | RedisLedger, op: tuple[object, ...]) -> object:
    name, n, amount, kind, view, lease, evidence = op
    hold_id = f"h{n}"
    try:
        if name == "reserve":
            v = view if isinstance(view, ServerView) else VIEW
            return ledger.reserve(KEY, hold_id, D(amount), v, kind, lease, T)  # type: ignore[arg-type]
        if name == "commit":
            return ledger.commit(KEY, hold_id, D(amount), T + float(evidence), T)  # type: ignore[arg-type]
        if name == "release":
            return ledger.release(KEY, hold_id, T)
        return ledger.totals(KEY, view, T)  # type: ignore[arg-type]
    except InvalidAmountError:
        return "invalid"


@FAST
@given(ops=_OPS)
def test_every_operation_answers_like_the_in_memory_ledger(
    redis_server: RedisServer, ops: list[tuple[object, ...]]
) -> None:
    memory, shared = InMemoryLedger(), fresh(redis_server.url)
    for op in ops:
        assert _apply(shared, op) == _apply(memory, op), op
        assert shared.totals(KEY, None, T) == memory.totals(KEY, None, T)


# -- views from a clock that ran ahead; commits checked against the newest view ----------------


def _session_charge(ledger: RedisLedger, hold_id: str, amount: str, evidence: float) -> None:
    assert ledger.reserve(KEY, hold_id, D(amount), VIEW, "session", 60, T)[0]
    assert ledger.commit(KEY, hold_id, D(amount), evidence, T)


def test_a_view_from_a_clock_that_ran_ahead_is_replaced_and_reconciles(redis_url: str) -> None:
    ledger = fresh(redis_url)
    ledger.totals(KEY, ServerView(D(10), D(0), T), T)
    _session_charge(ledger, "a", "2", T + 5)
    # A server whose clock ran an hour ahead: newest by update time, no growth yet.
    assert ledger.totals(KEY, ServerView(D(10), D(0), T + 3600), T).unreflected == D(2)
    # An older view without read_at, or read after the kept view's time, never replaces it.
    assert ledger.totals(KEY, ServerView(D(8), D(2), T + 10), T).available == D(10)
    assert ledger.totals(KEY, ServerView(D(8), D(2), T + 10, T + 3600), T).available == D(10)
    # Read before the kept view's update time: the kept view came from the clock that ran
    # ahead. The new view replaces it and is reconciled against like any newer view.
    after = ledger.totals(KEY, ServerView(D(8), D(2), T + 10, T + 12), T)
    assert (after.available, after.unreflected, after.effective) == (D(8), D(0), D(8))
    assert ledger.totals(KEY, ServerView(D(10), D(0), T + 3600), T).available == D(10)


def test_a_session_charge_is_checked_against_the_newest_view_when_committed(
    redis_url: str,
) -> None:
    ledger = fresh(redis_url)
    ledger.totals(KEY, ServerView(D(10), D(0), T), T)
    assert ledger.reserve(KEY, "a", D(2), VIEW, "session", 60, T)[0]
    assert ledger.reserve(KEY, "b", D(3), VIEW, "session", 60, T)[0]
    # A refresh between paying and committing already shows "a" paid at T + 10.
    ledger.totals(KEY, ServerView(D(8), D(2), T + 10), T)
    assert ledger.commit(KEY, "a", D(2), T + 5, T)
    assert ledger.totals(KEY, None, T)[1:] == (D(3), D(0), D(0))
    # Evidence after the newest view's time: the charge waits for a view still to come.
    assert ledger.commit(KEY, "b", D(3), T + 11, T)
    assert ledger.totals(KEY, None, T).unreflected == D(3)
    assert ledger.totals(KEY, ServerView(D(5), D(5), T + 11), T).unreflected == 0


# -- leases on Redis time ----------------------------------------------------------------------


def _redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


def _wait_for_redis_time(client: redis.Redis, moment: float) -> None:
    """Bounded poll until Redis TIME has passed ``moment`` (nothing signals time passing)."""
    for _ in range(200):
        left = moment - _redis_now(client)
        if left < 0:
            return
        time.sleep(left + 0.005)
    pytest.fail(f"Redis TIME did not pass {moment}")


def test_leases_follow_redis_time_whatever_clock_the_callers_pass(redis_url: str) -> None:
    prefix, client = f"test-{uuid.uuid4().hex}", redis.Redis.from_url(redis_url)
    behind, ahead = (RedisLedger.from_url(redis_url, prefix=prefix) for _ in range(2))
    hour_behind, day_ahead = T - 3600, T + 86400
    before = _redis_now(client)
    assert behind.reserve(KEY, "short", D(1), VIEW, "session", 0.3, hour_behind)[0]
    assert ahead.reserve(KEY, "long", D(2), VIEW, "session", 3600, day_ahead)[0]
    after = _redis_now(client)
    deadlines = dict(client.zrange(behind.keys(KEY)[2], 0, -1, withscores=True))
    assert before + 0.3 <= deadlines[b"short"] <= after + 0.3  # Redis TIME + lease, not now
    assert before + 3600 <= deadlines[b"long"] <= after + 3600
    # A caller a day ahead does not lapse the hour-long hold.
    assert ahead.totals(KEY, None, day_ahead).held >= D(2)
    _wait_for_redis_time(client, deadlines[b"short"])
    # A caller an hour behind does not keep the short hold alive once Redis time passed it.
    assert behind.totals(KEY, None, hour_behind)[1:] == (D(2), D(0), D(1))
    assert not behind.commit(KEY, "short", D(1), T, hour_behind)
    assert ahead.commit(KEY, "long", D(2), T, day_ahead)


def test_a_zero_lease_lapses_at_the_next_operation_from_any_clock(redis_url: str) -> None:
    # The deadline itself lapses, as in the in-memory ledger: Redis TIME at the next script is
    # at least the deadline, whatever `now` the callers pass.
    ledger = fresh(redis_url)
    assert ledger.reserve(KEY, "a", D(4), VIEW, "session", 0, T + 3600)[0]
    assert ledger.reserve(KEY, "b", D(1), VIEW, "external", 3600, T - 3600)[0]
    assert ledger.totals(KEY, None, T - 86400)[1:] == (D(1), D(0), D(4))
    assert not ledger.commit(KEY, "a", D(1), T, T)
    assert not ledger.release(KEY, "a", T)
    assert ledger.release(KEY, "b", T)
    # Reserve sees lapses before deciding: "c" lapses before "d" asks, "e" finds 10 - 4 - 5.
    assert ledger.reserve(KEY, "c", D(5), VIEW, "external", 0, T)[0]
    granted, before = ledger.reserve(KEY, "d", D(1), VIEW, "external", 3600, T - 86400)
    assert granted
    assert (before.held, before.external) == (D(0), D(9))
    assert not ledger.reserve(KEY, "e", D("0.01"), VIEW, "external", 3600, T)[0]


# -- keys, sharing, clients --------------------------------------------------------------------


@pytest.mark.parametrize("key", [KEY, "odd{key}with}braces{"])
def test_a_sessions_keys_share_one_hash_slot(redis_url: str, key: str) -> None:
    ledger = fresh(redis_url)
    assert ledger.reserve(key, "a", D(1), VIEW, "session", 60, T)[0]
    assert ledger.reserve(key, "b", D(1), VIEW, "session", 60, T)[0]
    assert ledger.commit(key, "a", D(1), T, T)
    names = ledger.keys(key)
    client = redis.Redis.from_url(redis_url)
    assert client.exists(*names) == 6  # book, holds, deadlines, pending, settled, forget
    assert len({key_slot(name.encode()) for name in names}) == 1
    assert len({key_slot(n.encode()) for n in fresh(redis_url).keys(key + "x")}) == 1


def test_processes_with_different_cached_views_agree(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    first, second = (RedisLedger.from_url(redis_url, prefix=prefix) for _ in range(2))
    old, new = ServerView(D(10), D(0), T), ServerView(D(6), D(4), T + 30)
    assert first.reserve(KEY, "a", D(3), old, "external", 60, T)[0]
    granted, before = second.reserve(KEY, "b", D(3), new, "external", 60, T)
    assert (granted, before.available, before.held) == (True, D(6), D(3))
    granted, before = first.reserve(KEY, "c", D("0.01"), old, "external", 60, T)
    assert (granted, before.available, before.held) == (False, D(6), D(6))
    assert second.commit(KEY, "a", D(2), T, T)  # a hold settles from any process


def test_a_client_decoding_responses_works_too(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    ledger = RedisLedger(client, prefix=f"test-{uuid.uuid4().hex}", key_ttl=30)
    granted, before = ledger.reserve(KEY, "a", D("0.5"), VIEW, "external", 60, T)
    assert (granted, before.held) == (True, D(0))
    assert ledger.totals(KEY, None, T).held == D("0.5")
    ttls = [client.pttl(name) for name in ledger.keys(KEY)[:3]]
    assert all(0 < ttl <= 30_000 for ttl in ttls)


# -- failing closed ----------------------------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    server = RedisServer(redis_binary())
    server.start()
    yield server
    server.close()


@pytest.fixture
def aof_server() -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), appendonly=True)
    server.start()
    yield server
    server.close()


def test_redis_down_blocks_with_a_chained_error_and_recovers_with_its_data(
    aof_server: RedisServer,
) -> None:
    ledger = RedisLedger.from_url(aof_server.url, timeout=0.5)
    assert ledger.reserve(KEY, "a", D(1), VIEW, "external", 60, T)[0]
    assert ledger.reserve(KEY, "b", D(2), VIEW, "session", 60, T)[0]
    aof_server.stop()
    calls: list[Callable[[], object]] = [
        lambda: ledger.reserve(KEY, "c", D(1), VIEW, "external", 60, T),
        lambda: ledger.commit(KEY, "a", D(1), T, T),
        lambda: ledger.release(KEY, "a", T),
        lambda: ledger.totals(KEY, VIEW, T),
    ]
    for call in calls:
        with pytest.raises(LedgerUnavailableError, match="unavailable") as info:
            call()
        assert not isinstance(info.value, LedgerDataLostError)
        assert isinstance(info.value.__cause__, redis.ConnectionError)
    aof_server.start()  # same port; the AOF brings the book back, so nothing was lost
    assert ledger.commit(KEY, "a", D(1), T, T)
    assert ledger.totals(KEY, None, T)[1:] == (D(2), D(0), D(1))
    assert ledger.reserve(KEY, "c", D(7), VIEW, "external", 60, T)[0]


# -- Redis losing its data ---------------------------------------------------------------------

ARN, SID = KEY.rsplit("/", 1)
OTHER = f"{ARN}/session-2"


def _closed(ledger: RedisLedger, key: str = KEY) -> list[LedgerDataLostError]:
    """Every operation on ``key`` fails with LedgerDataLostError; returns the errors."""
    calls: list[Callable[[], object]] = [
        lambda: ledger.reserve(key, "new", D(1), VIEW, "external", 60, T),
        lambda: ledger.commit(key, "b", D(1), T, T),
        lambda: ledger.release(key, "b", T),
        lambda: ledger.totals(key, VIEW, T),
        lambda: ledger.totals(key, None, T),
    ]
    errors = []
    for call in calls:
        with pytest.raises(LedgerDataLostError, match=r"RedisLedger\.reopen") as info:
            call()
        errors.append(info.value)
    return errors


def test_redis_back_without_its_data_closes_the_session_until_reopened(
    own_server: RedisServer,
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    first, second = (RedisLedger.from_url(own_server.url, prefix=prefix) for _ in range(2))
    assert first.reserve(KEY, "a", D(4), VIEW, "external", 60, T)[0]
    assert first.commit(KEY, "a", D(3), T, T)
    assert second.reserve(KEY, "b", D(1), VIEW, "session", 60, T)[0]
    assert second.reserve(OTHER, "x", D(1), VIEW, "external", 60, T)[0]
    own_server.stop()
    own_server.start()  # same port, empty: the 3.00 charge and the hold are gone
    errors = _closed(first)
    assert all(isinstance(e, LedgerUnavailableError) and e.__cause__ is None for e in errors)
    # The first to notice closed the session for everyone, even a process that never wrote it.
    newcomer = RedisLedger.from_url(own_server.url, prefix=prefix)
    _closed(newcomer)
    _closed(second, OTHER)  # its other session was lost too; second notices on first use
    assert newcomer.reserve(f"{ARN}/session-3", "y", D(1), VIEW, "external", 60, T)[0]
    # An operator checks the session on the payment service, then reopens it.
    assert newcomer.reopen(ARN, SID)
    assert not newcomer.reopen(ARN, SID)  # reopening an open session changes nothing
    # A fresh book from the server's current reading; what the lost book held is forgotten.
    fresh_view = ServerView(D(6), D(4), T + 60)
    assert first.totals(KEY, fresh_view, T) == (D(6), D(0), D(0), D(0))
    assert not second.commit(KEY, "b", D(1), T, T)
    assert second.reserve(KEY, "c", D(6), VIEW, "external", 60, T)[0]
    assert newcomer.totals(KEY, None, T).held == D(6)
    _closed(second, OTHER)  # still closed: reopen is per session


def test_flushall_is_noticed_even_after_a_new_process_made_a_new_book(
    own_server: RedisServer,
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    writer = RedisLedger.from_url(own_server.url, prefix=prefix)
    assert writer.reserve(KEY, "a", D(8), VIEW, "external", 60, T)[0]
    redis.Redis.from_url(own_server.url).flushall()
    # A process that never wrote the session cannot tell: it starts a new book...
    newcomer = RedisLedger.from_url(own_server.url, prefix=prefix)
    assert newcomer.reserve(KEY, "b", D(8), VIEW, "external", 60, T)[0]
    # ...which is not the book the writer wrote to: the writer closes the session for both.
    _closed(writer)
    _closed(newcomer)
    writer.reopen(ARN, SID)
    # The book made after the loss is kept, and both processes carry on with it.
    assert writer.totals(KEY, None, T).held == D(8)
    assert newcomer.commit(KEY, "b", D(8), T, T)
    assert writer.totals(KEY, None, T)[1:] == (D(0), D(0), D(8))


def test_a_book_rolled_back_to_an_older_copy_is_lost(redis_url: str) -> None:
    # A failover to a replica that missed the last writes: the book is there, but older than
    # what a writer saw.
    ledger, client = fresh(redis_url), redis.Redis.from_url(redis_url)
    assert ledger.reserve(KEY, "a", D(1), VIEW, "external", 60, T)[0]
    names = ledger.keys(KEY)[:4]
    copies = {name: client.dump(name) for name in names}
    assert ledger.reserve(KEY, "b", D(2), VIEW, "external", 60, T)[0]
    for name, copy in copies.items():
        if copy is None:
            client.delete(name)
        else:
            client.restore(name, 0, copy, replace=True)  # type: ignore[arg-type]
    _closed(ledger)


def test_a_book_that_expired_by_its_key_ttl_is_not_lost(redis_url: str) -> None:
    ledger, client = fresh(redis_url, key_ttl=0.3), redis.Redis.from_url(redis_url)
    assert ledger.reserve(KEY, "a", D(1), VIEW, "external", 60, T)[0]
    book = ledger.keys(KEY)[0]
    for _ in range(100):  # bounded poll: nothing signals an expiry
        left = client.pttl(book)
        if left < 0:
            break
        time.sleep(left / 1000 + 0.01)
    assert not client.exists(book)
    assert ledger.totals(KEY, VIEW, T) == (D(10), D(0), D(0), D(0))


def test_reopen_run_twice_by_a_retrying_client_still_notices_the_next_loss(
    redis_url: str,
) -> None:
    ledger, client = fresh(redis_url), redis.Redis.from_url(redis_url)
    assert ledger.reserve(KEY, "a", D(1), VIEW, "external", 60, T)[0]
    names = ledger.keys(KEY)
    client.hset(names[0], "gen", "made-after-a-loss")
    _closed(ledger)
    args = ["", "0", "gen-after-reopen", "0"]
    assert client.eval(REOPEN, len(names), *names, *args) == 1
    assert client.eval(REOPEN, len(names), *names, *args) == 0  # the retry
    assert ledger.reserve(KEY, "b", D(1), VIEW, "external", 60, T)[0]  # adopts the new book
    assert client.hget(names[0], "gen") == b"gen-after-reopen"
    client.delete(names[0])
    _closed(ledger)


def test_a_slow_redis_times_out_into_the_same_error(own_server: RedisServer) -> None:
    ledger = RedisLedger.from_url(own_server.url, timeout=0.2)
    admin = redis.Redis.from_url(own_server.url)
    ledger.totals(KEY, VIEW, T)  # scripts loaded, connection open
    admin.client_pause(5000, all=False)  # writes (and scripts) wait
    try:
        with pytest.raises(LedgerUnavailableError) as info:
            ledger.reserve(KEY, "a", D(1), VIEW, "external", 60, T)
        assert isinstance(info.value.__cause__, redis.TimeoutError)
    finally:
        admin.client_unpause()
    assert ledger.reserve(KEY, "b", D(1), VIEW, "external", 60, T)[0]


# -- many processes, one session --------------------------------------------------------------

BUDGET = D(1000)
BARRIER_SECONDS = 120


def _barrier_client(url: str) -> redis.Redis:
    # BLPOP waits on the socket, and redis-py's default socket_timeout (5 s) would cut a
    # longer wait short with a TimeoutError: give the barrier's client more than it waits.
    return redis.Redis.from_url(url, socket_timeout=BARRIER_SECONDS + 30)


def _charge_worker(url: str, prefix: str, seed: int, charges: int) -> dict[str, str | int]:
    """One process: ``charges`` random reserve -> commit (80 %) or release (20 %) cycles."""
    ledger = RedisLedger.from_url(url, prefix=prefix, timeout=10)
    client = _barrier_client(url)
    client.rpush(f"{prefix}:ready", seed)
    assert client.blpop([f"{prefix}:go"], timeout=BARRIER_SECONDS) is not None
    rng, view = random.Random(seed), ServerView(BUDGET, D(0), T)
    committed, granted = D(0), 0
    for i in range(charges):
        amount, hold_id = D(rng.randint(1, 200)).scaleb(-2), f"{seed}-{i}"
        kind = rng.choice(["session", "external"])
        if not ledger.reserve(KEY, hold_id, amount, view, kind, 600, T)[0]:  # type: ignore[arg-type]
            continue
        granted += 1
        if rng.random() < 0.8:
            actual = D(rng.randint(0, int(amount * 100))).scaleb(-2)
            assert ledger.commit(KEY, hold_id, actual, T, T)
            committed += actual
        else:
            assert ledger.release(KEY, hold_id, T)
    return {"committed": str(committed), "granted": granted}


def test_four_processes_never_spend_more_than_the_budget(redis_url: str) -> None:
    prefix, charges = f"test-{uuid.uuid4().hex}", 1000
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, redis_url, prefix, str(seed), str(charges)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    try:
        client = _barrier_client(redis_url)
        for _ in workers:
            assert client.blpop([f"{prefix}:ready"], timeout=BARRIER_SECONDS) is not None
        client.rpush(f"{prefix}:go", *range(len(workers)))
        results = []
        for worker in workers:
            out, _ = worker.communicate(timeout=120)
            assert worker.returncode == 0
            results.append(json.loads(out))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    totals = RedisLedger.from_url(redis_url, prefix=prefix, timeout=10).totals(KEY, None, T)
    committed = sum(D(r["committed"]) for r in results)
    assert committed == totals.unreflected + totals.external
    assert committed <= BUDGET
    assert totals.held == 0
    assert sum(r["granted"] for r in results) < 4 * charges  # the budget did bind


# -- guards sharing one served session ---------------------------------------------------------

NewSession = Callable[..., PaymentSessionFixture]


def test_two_guards_hold_against_one_shared_budget(
    redis_url: str, new_payment_session: NewSession
) -> None:
    s = new_payment_session("10.00")
    # Two in-process ledgers cannot see each other: both admit 6.00 of a 10.00 session.
    apart = [s.guard(settlement="session", ledger=InMemoryLedger()) for _ in range(2)]
    assert [g.reserve("6.00").state for g in apart] == ["held", "held"]
    prefix = f"test-{uuid.uuid4().hex}"
    first, second = (
        s.guard(settlement="session", ledger=RedisLedger.from_url(redis_url, prefix=prefix))
        for _ in range(2)
    )
    hold = first.reserve("6.00")
    with pytest.raises(BudgetExceededError) as info:
        second.reserve("6.00")
    assert info.value.available == Money.of("4.00")
    hold.release()
    assert second.reserve("6.00").state == "held"


def test_guards_paying_through_the_session_never_overspend_it(
    redis_url: str, new_payment_session: NewSession
) -> None:
    s = new_payment_session("5.00")
    prefix = f"test-{uuid.uuid4().hex}"
    guards = [
        s.guard(settlement="session", ledger=RedisLedger.from_url(redis_url, prefix=prefix))
        for _ in range(2)
    ]
    paid: list[Decimal] = []
    refused: list[str] = []
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        rng, guard = random.Random(n), guards[n % 2]
        barrier.wait()
        for _ in range(10):
            price = D(rng.randint(1, 50)).scaleb(-2)
            try:
                hold = guard.reserve(price)
            except BudgetExceededError:
                refused.append(str(price))
                continue
            actual = price if rng.random() < 0.7 else D(rng.randint(1, int(price * 100))).scaleb(-2)
            receipt = s.pay(str(actual))  # the server refuses any overspend: ClientError
            hold.commit(actual, receipt_time=receipt["updatedAt"])
            paid.append(actual)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused
    assert s.available() == D("5.00") - sum(paid) >= 0
    for guard in guards:
        guard.refresh()
        snap = guard.snapshot()
        assert (snap.held, snap.pending_session, snap.external) == (Money.zero(),) * 3
        assert snap.effective_available == Money.of(s.available() or 0)


# -- imports -----------------------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_redis_server_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="apt-get install -y redis-server"):
        redis_binary()


def test_importing_spendguard_does_not_import_redis() -> None:
    result = _python("import sys, spendguard; print('redis' in sys.modules)")
    assert result.stdout.strip() == "False", result.stderr


def test_a_missing_redis_package_names_the_extra() -> None:
    code = "import sys; sys.modules['redis'] = None; import spendguard.redis_ledger"
    result = _python(code)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert 'pip install "spendguard[redis]"' in result.stderr


if __name__ == "__main__":  # a worker process of test_four_processes_never_spend_more_than_...
    url_arg, prefix_arg, seed_arg, charges_arg = sys.argv[1:]
    print(json.dumps(_charge_worker(url_arg, prefix_arg, int(seed_arg), int(charges_arg))))
