"""One contract, every ledger: the same assertions run on InMemoryLedger and RedisLedger."""

from __future__ import annotations

import random
import threading
import uuid
from decimal import Decimal

import pytest
from redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401

from spendguard._errors import InvalidAmountError
from spendguard._ledger import Ledger, ServerView, Settlement
from spendguard._memory_ledger import InMemoryLedger
from spendguard._redis_ledger import RedisLedger

KEY = "arn:aws:bedrock-agentcore:us-east-1:123456789012:payment-manager/pm-1/session-1"
T = 1_800_000_000.0  # the server's clock
NOW = T + 5.0  # the caller's clock
LEASE = 60.0
D = Decimal


def view(available: str, spent: str | None = "0", at: float = T) -> ServerView:
    return ServerView(D(available), None if spent is None else D(spent), at)


@pytest.fixture(
    params=["memory", pytest.param("redis", marks=pytest.mark.redis)],
)
def ledger(request: pytest.FixtureRequest) -> Ledger:
    if request.param == "memory":
        return InMemoryLedger()
    url = request.getfixturevalue("redis_url")
    return RedisLedger.from_url(url, prefix=f"test-{uuid.uuid4().hex}")


def figures(ledger: Ledger, now: float = NOW) -> tuple[object, ...]:
    t = ledger.totals(KEY, None, now)
    return t.available, t.held, t.unreflected, t.external


def hold(
    ledger: Ledger,
    hold_id: str,
    amount: str,
    *,
    available: str = "10",
    settlement: Settlement = "external",
    now: float = NOW,
) -> bool:
    granted, _ = ledger.reserve(KEY, hold_id, D(amount), view(available), settlement, LEASE, now)
    return granted


# -- check and hold ----------------------------------------------------------------------------


def test_reserve_grants_what_fits_and_reports_the_totals_before(ledger: Ledger) -> None:
    granted, before = ledger.reserve(KEY, "a", D("3.5"), view("10"), "external", LEASE, NOW)
    assert granted
    assert (before.available, before.held, before.effective) == (D(10), D(0), D(10))
    granted, before = ledger.reserve(KEY, "b", D("1"), view("10"), "external", LEASE, NOW)
    assert granted
    assert before.held == D("3.5")
    assert figures(ledger) == (D(10), D("4.5"), 0, 0)


def test_reserve_refuses_what_does_not_fit_and_changes_nothing(ledger: Ledger) -> None:
    assert hold(ledger, "a", "6")
    granted, before = ledger.reserve(KEY, "b", D("4.01"), view("10"), "external", LEASE, NOW)
    assert not granted
    assert before.effective == D(4)
    assert figures(ledger) == (D(10), D(6), 0, 0)
    assert not ledger.release(KEY, "b", NOW)


def test_exact_fit_at_eighteen_places_is_granted_and_one_unit_more_is_not(ledger: Ledger) -> None:
    top = "999999999999.999999999999999999"
    assert hold(ledger, "a", "0.000000000000000001", available=top)
    assert not hold(ledger, "b", top, available=top)
    assert hold(ledger, "c", "999999999999.999999999999999998", available=top)
    assert figures(ledger)[1] == D(top)
    assert not hold(ledger, "d", "0.000000000000000001", available=top)
    assert hold(ledger, "e", "0", available=top)


def test_zero_is_granted_even_when_nothing_is_left(ledger: Ledger) -> None:
    assert hold(ledger, "a", "10")
    # The server now says less is available than is held: the room is negative.
    granted, before = ledger.reserve(KEY, "z", D(0), view("4", at=T + 1), "external", LEASE, NOW)
    assert granted
    assert before.effective == 0
    assert not hold(ledger, "y", "0.01", available="4")


def test_a_hold_id_in_use_with_another_amount_is_refused(ledger: Ledger) -> None:
    assert hold(ledger, "a", "1")
    assert not hold(ledger, "a", "2")
    assert not hold(ledger, "a", "0.5")
    assert figures(ledger)[1] == D(1)


@pytest.mark.parametrize("amount", ["-1", "-0.000000000000000001"])
def test_a_negative_hold_is_refused(ledger: Ledger, amount: str) -> None:
    with pytest.raises(InvalidAmountError):
        ledger.reserve(KEY, "neg", D(amount), view("10"), "external", LEASE, NOW)
    assert figures(ledger)[1] == 0


# -- commit and release ------------------------------------------------------------------------


def test_external_commit_charges_the_actual_amount_for_good(ledger: Ledger) -> None:
    assert hold(ledger, "a", "2")
    assert ledger.commit(KEY, "a", D("1.25"), T, NOW)
    assert figures(ledger) == (D(10), 0, 0, D("1.25"))
    # A newer view showing growth does not drop an external charge.
    assert ledger.totals(KEY, view("8.75", "1.25", T + 100), NOW).external == D("1.25")


def test_commit_more_than_held_raises_and_keeps_the_hold(ledger: Ledger) -> None:
    assert hold(ledger, "a", "2")
    with pytest.raises(InvalidAmountError):
        ledger.commit(KEY, "a", D("2.000000000000000001"), T, NOW)
    assert figures(ledger) == (D(10), D(2), 0, 0)
    assert ledger.commit(KEY, "a", D(2), T, NOW)
    assert figures(ledger) == (D(10), 0, 0, D(2))


def test_commit_of_a_negative_amount_raises(ledger: Ledger) -> None:
    assert hold(ledger, "a", "2")
    with pytest.raises(InvalidAmountError):
        ledger.commit(KEY, "a", D("-1"), T, NOW)
    assert figures(ledger) == (D(10), D(2), 0, 0)


def test_unknown_holds_and_the_other_settlement_return_false(ledger: Ledger) -> None:
    assert not ledger.commit(KEY, "nope", D(1), T, NOW)
    assert not ledger.release(KEY, "nope", NOW)
    assert hold(ledger, "a", "1")
    assert hold(ledger, "b", "1")
    assert ledger.commit(KEY, "a", D(1), T, NOW)
    assert not ledger.release(KEY, "a", NOW)
    assert ledger.release(KEY, "b", NOW)
    assert not ledger.commit(KEY, "b", D(1), T, NOW)
    assert not ledger.commit(KEY, "unknown-hold", D(0), T, NOW)
    assert figures(ledger) == (D(10), 0, 0, D(1))


# -- idempotent per hold id (a client may retry a call whose reply it lost) --------------------


def test_a_retried_reserve_answers_granted_without_a_second_hold(ledger: Ledger) -> None:
    first = ledger.reserve(KEY, "a", D(6), view("10"), "session", LEASE, NOW)
    again = ledger.reserve(KEY, "a", D(6), view("10"), "session", LEASE, NOW)
    assert first == again == (True, (D(10), D(0), D(0), D(0)))
    assert figures(ledger) == (D(10), D(6), 0, 0)
    assert not hold(ledger, "b", "4.01")  # one hold of 6, not two
    assert ledger.commit(KEY, "a", D(6), T, NOW)
    # Retried after its hold was settled: still granted, and nothing is held again.
    assert hold(ledger, "a", "6", settlement="session")
    assert figures(ledger) == (D(10), 0, D(6), 0)


def test_a_retried_reserve_when_the_first_did_not_fit_decides_afresh(ledger: Ledger) -> None:
    assert hold(ledger, "big", "8")
    assert not hold(ledger, "a", "3")
    assert ledger.release(KEY, "big", NOW)
    assert hold(ledger, "a", "3")  # nothing was held the first time: one hold now
    assert figures(ledger) == (D(10), D(3), 0, 0)


@pytest.mark.parametrize("settlement", ["session", "external"])
def test_a_retried_commit_answers_true_and_charges_once(
    ledger: Ledger, settlement: Settlement
) -> None:
    assert hold(ledger, "a", "4", settlement=settlement)
    assert ledger.commit(KEY, "a", D(3), T + 1, NOW)
    before = figures(ledger)
    assert ledger.commit(KEY, "a", D(3), T + 1, NOW)
    assert ledger.commit(KEY, "a", D(4), T + 1, NOW)  # whatever the retry says, one charge
    assert figures(ledger) == before
    assert sum(before[2:]) == D(3)  # type: ignore[arg-type]
    assert not ledger.release(KEY, "a", NOW)


def test_a_retried_release_answers_true_and_gives_back_once(ledger: Ledger) -> None:
    assert hold(ledger, "a", "4")
    assert hold(ledger, "b", "5")
    assert ledger.release(KEY, "a", NOW)
    assert ledger.release(KEY, "a", NOW)
    assert figures(ledger) == (D(10), D(5), 0, 0)
    assert not ledger.commit(KEY, "a", D(4), T, NOW)
    assert figures(ledger) == (D(10), D(5), 0, 0)


def test_a_lapsed_hold_stays_lapsed_when_its_reserve_or_settle_is_retried(
    ledger: Ledger,
) -> None:
    assert ledger.reserve(KEY, "a", D(4), view("10"), "session", 0, NOW)[0]
    assert figures(ledger) == (D(10), 0, 0, D(4))
    assert ledger.reserve(KEY, "a", D(4), view("10"), "session", 0, NOW)[0]
    assert not ledger.commit(KEY, "a", D(4), T, NOW)
    assert not ledger.release(KEY, "a", NOW)
    assert figures(ledger) == (D(10), 0, 0, D(4))


def test_release_gives_the_money_back(ledger: Ledger) -> None:
    assert hold(ledger, "a", "10")
    assert not hold(ledger, "b", "0.01")
    assert ledger.release(KEY, "a", NOW)
    assert hold(ledger, "b", "10")


def test_session_commits_are_pending_and_zero_leaves_nothing(ledger: Ledger) -> None:
    assert hold(ledger, "a", "3", settlement="session")
    assert hold(ledger, "b", "3", settlement="session")
    assert ledger.commit(KEY, "a", D("2.5"), T + 1, NOW)
    assert ledger.commit(KEY, "b", D(0), T + 1, NOW)
    assert figures(ledger) == (D(10), 0, D("2.5"), 0)
    assert not hold(ledger, "c", "7.51")


def test_unknown_key_reports_zeros_without_a_view(ledger: Ledger) -> None:
    assert figures(ledger) == (0, 0, 0, 0)


# -- leases ------------------------------------------------------------------------------------


def test_a_lapsed_hold_becomes_an_external_charge_of_its_full_amount(ledger: Ledger) -> None:
    # A lease of 0 lapses at the ledger's next operation: the in-memory ledger by the caller's
    # monotonic `now`, the Redis ledger by Redis TIME (the deadline itself lapses in both).
    assert ledger.reserve(KEY, "a", D(4), view("10"), "session", 0, NOW)[0]
    assert hold(ledger, "b", "1")
    assert figures(ledger) == (D(10), D(1), 0, D(4))
    assert not ledger.commit(KEY, "a", D(1), T, NOW)
    assert not ledger.release(KEY, "a", NOW)
    assert ledger.commit(KEY, "b", D(1), T, NOW)
    assert figures(ledger) == (D(10), 0, 0, D(5))


def test_reserve_sees_lapses_before_deciding(ledger: Ledger) -> None:
    assert ledger.reserve(KEY, "a", D(6), view("10"), "external", 0, NOW)[0]
    granted, before = ledger.reserve(KEY, "b", D(4), view("10"), "external", LEASE, NOW)
    assert granted
    assert (before.held, before.external) == (D(0), D(6))
    assert not hold(ledger, "c", "0.01")


def test_in_memory_leases_run_on_the_callers_monotonic_now() -> None:
    ledger = InMemoryLedger()
    assert hold(ledger, "a", "4", settlement="session")
    assert hold(ledger, "b", "1", now=NOW + 10)
    assert figures(ledger, NOW + LEASE - 0.001) == (D(10), D(5), 0, 0)
    assert figures(ledger, NOW + LEASE) == (D(10), D(1), 0, D(4))  # deadline itself lapses
    assert figures(ledger, NOW + LEASE + 10) == (D(10), 0, 0, D(5))


def test_commit_just_before_the_deadline_wins() -> None:
    ledger = InMemoryLedger()
    assert hold(ledger, "a", "4")
    assert ledger.commit(KEY, "a", D(1), T, NOW + LEASE - 0.001)
    assert figures(ledger, NOW + LEASE * 10) == (D(10), 0, 0, D(1))


# -- reconciliation ----------------------------------------------------------------------------


def commit_session(ledger: Ledger, hold_id: str, amount: str, evidence: float) -> None:
    assert hold(ledger, hold_id, amount, settlement="session")
    assert ledger.commit(KEY, hold_id, D(amount), evidence, NOW)


def test_a_session_charge_drops_with_both_time_and_growth(ledger: Ledger) -> None:
    ledger.totals(KEY, view("10", "0", T), NOW)
    commit_session(ledger, "a", "2", T + 10)
    assert ledger.totals(KEY, view("8", "2", T + 10), NOW).unreflected == 0
    assert figures(ledger) == (D(8), 0, 0, 0)


def test_growth_without_time_evidence_drops_nothing(ledger: Ledger) -> None:
    ledger.totals(KEY, view("10", "0", T), NOW)
    commit_session(ledger, "a", "2", T + 10)
    assert ledger.totals(KEY, view("8", "2", T + 9), NOW).unreflected == D(2)


def test_time_without_growth_drops_nothing(ledger: Ledger) -> None:
    ledger.totals(KEY, view("10", "0", T), NOW)
    commit_session(ledger, "a", "2", T + 10)
    t = ledger.totals(KEY, view("8.01", "1.99", T + 20), NOW)
    assert (t.available, t.unreflected, t.effective) == (D("8.01"), D(2), D("6.01"))


def test_the_longest_prefix_in_commit_order_drops(ledger: Ledger) -> None:
    ledger.totals(KEY, view("10", "0", T), NOW)
    commit_session(ledger, "a", "1", T + 1)
    commit_session(ledger, "b", "2", T + 1)
    commit_session(ledger, "c", "0.5", T + 1)
    # Growth 1.5 covers "a" (1) but not "a"+"b" (3); "c" is never taken out of order.
    assert ledger.totals(KEY, view("8.5", "1.5", T + 5), NOW).unreflected == D("2.5")
    # The baseline moved by 1: the next view needs 2 more of growth to drop "b".
    assert ledger.totals(KEY, view("7.6", "2.4", T + 6), NOW).unreflected == D("2.5")
    assert ledger.totals(KEY, view("7", "3", T + 7), NOW).unreflected == D("0.5")
    assert ledger.totals(KEY, view("6.5", "3.5", T + 8), NOW).unreflected == 0


def test_a_prefix_stops_at_the_first_charge_without_time_evidence(ledger: Ledger) -> None:
    ledger.totals(KEY, view("10", "0", T), NOW)
    commit_session(ledger, "a", "1", T + 1)
    commit_session(ledger, "b", "1", T + 50)
    commit_session(ledger, "c", "1", T + 1)
    assert ledger.totals(KEY, view("7", "3", T + 10), NOW).unreflected == D(2)


def test_an_unknown_spent_total_never_drops_and_sets_no_baseline(ledger: Ledger) -> None:
    ledger.totals(KEY, view("10", None, T), NOW)
    commit_session(ledger, "a", "2", T + 1)
    assert ledger.totals(KEY, view("8", None, T + 10), NOW).unreflected == D(2)
    # The first known spent total is the baseline: no growth yet.
    assert ledger.totals(KEY, view("8", "2", T + 11), NOW).unreflected == D(2)
    assert ledger.totals(KEY, view("6", "4", T + 12), NOW).unreflected == 0


def test_stale_views_never_roll_available_back(ledger: Ledger) -> None:
    ledger.totals(KEY, view("5", "5", T + 10), NOW)
    assert ledger.totals(KEY, view("9", "1", T + 5), NOW).available == D(5)
    assert ledger.totals(KEY, view("6", "4", T + 10), NOW).available == D(5)
    # Same update time, less available: the more cautious figure wins.
    assert ledger.totals(KEY, view("4", "6", T + 10), NOW).available == D(4)
    granted, before = ledger.reserve(KEY, "a", D(1), view("9", "1", T), "external", LEASE, NOW)
    assert granted
    assert before.available == D(4)


def test_a_stale_view_does_not_reconcile(ledger: Ledger) -> None:
    ledger.totals(KEY, view("10", "0", T + 10), NOW)
    commit_session(ledger, "a", "2", T)
    assert ledger.totals(KEY, view("8", "2", T + 10), NOW).unreflected == D(2)
    assert ledger.totals(KEY, view("8", "2", T + 9), NOW).unreflected == D(2)
    assert ledger.totals(KEY, view("8", "2", T + 11), NOW).unreflected == 0


# -- concurrency -------------------------------------------------------------------------------


def test_threads_hammering_reserve_never_overspend(ledger: Ledger) -> None:
    budget = D("25")
    granted: list[Decimal] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        rng = random.Random(n)
        start.wait()
        for i in range(150):
            amount = D(rng.randint(1, 100_000)).scaleb(-5)
            ok, _ = ledger.reserve(
                KEY, f"{n}-{i}", amount, view(str(budget)), "external", LEASE, NOW
            )
            if ok:
                with lock:
                    granted.append(amount)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = ledger.totals(KEY, None, NOW).held
    assert held == sum(granted)
    assert held <= budget
    assert len(granted) > 10


def test_a_view_read_before_the_kept_views_update_time_replaces_it(ledger: Ledger) -> None:
    ledger.totals(KEY, view("10", "0", T), NOW)
    commit_session(ledger, "a", "2", T + 5)
    ledger.totals(KEY, view("10", "0", T + 3600), NOW)  # from a server clock an hour ahead
    assert ledger.totals(KEY, view("8", "2", T + 10), NOW).available == D(10)  # no read_at
    assert ledger.totals(KEY, ServerView(D(8), D(2), T + 10, T + 3600), NOW).available == D(10)
    t = ledger.totals(KEY, ServerView(D(8), D(2), T + 10, T + 12), NOW)
    assert (t.available, t.unreflected) == (D(8), 0)  # replaced, and reconciled against


def test_a_session_commit_is_checked_against_the_newest_view(ledger: Ledger) -> None:
    ledger.totals(KEY, view("10", "0", T), NOW)
    assert hold(ledger, "a", "2", settlement="session")
    ledger.totals(KEY, view("8", "2", T + 10), NOW)  # refreshed after paying, before committing
    assert ledger.commit(KEY, "a", D(2), T + 5, NOW)
    assert figures(ledger) == (D(8), 0, 0, 0)
    assert hold(ledger, "b", "3", settlement="session")
    assert ledger.commit(KEY, "b", D(3), T + 11, NOW)  # evidence after the newest view
    assert figures(ledger) == (D(8), 0, D(3), 0)
