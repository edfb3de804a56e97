"""The Redis ledger on a real Redis Cluster: three masters started here, redis-py's
``RedisCluster``, sessions spread over slots, four processes, and a master killed mid-run."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis
from conftest import PaymentSessionFixture
from redis.crc import key_slot
from redis_cluster import LocalCluster

from spendguard import LedgerUnavailableError, Money
from spendguard.controls import SessionControls, SessionFrozenError
from spendguard.ledger import ServerView
from spendguard.redis_ledger import RedisLedger

pytestmark = pytest.mark.redis

ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:payment-manager/pm-1"
T = 1_800_000_000.0
D = Decimal
BUDGET = D(100)
BARRIER_SECONDS = 60
# The client waits longer than any wait it is part of: a BLPOP barrier, a node coming back.
CLIENT_TIMEOUT = BARRIER_SECONDS + 30


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    made = LocalCluster(3)
    made.start()
    yield made
    made.close()


def ledger_on(cluster: LocalCluster, prefix: str, timeout: float = 5.0) -> RedisLedger:
    return RedisLedger.from_url(cluster.url, cluster=True, prefix=prefix, timeout=timeout)


def one_session_per_master(cluster: LocalCluster, ledger: RedisLedger) -> list[str]:
    """Session keys whose books live on different masters, one per master."""
    found: dict[int, str] = {}
    for i in range(200):
        key = f"{ARN}/payment-session-{i:015d}"
        found.setdefault(cluster.node_of(ledger.keys(key)[0]).port, key)
        if len(found) == len(cluster.nodes):
            return list(found.values())
    raise AssertionError("200 sessions all hashed to fewer masters")  # pragma: no cover


def test_sessions_spread_over_the_masters_with_each_sessions_keys_in_one_slot(
    cluster: LocalCluster,
) -> None:
    ledger = ledger_on(cluster, f"test-{uuid.uuid4().hex}")
    keys = one_session_per_master(cluster, ledger)
    assert len({cluster.node_of(ledger.keys(k)[0]).port for k in keys}) == 3
    view = ServerView(D(10), D(0), T)
    for key in keys:
        assert len({key_slot(name.encode()) for name in ledger.keys(key)}) == 1
        assert ledger.reserve(key, "a", D(4), view, "session", 600, T, tool="search")[0]
        assert ledger.reserve(key, "b", D(6), view, "external", 600, T)[0]
        assert not ledger.reserve(key, "c", D("0.01"), view, "external", 600, T)[0]
        assert ledger.commit(key, "a", D(3), T + 1, T)
        assert ledger.commit(key, "a", D(3), T + 1, T)  # a retry, as RedisCluster may send
        assert ledger.release(key, "b", T)
        assert ledger.totals(key, None, T)[1:] == (D(0), D(3), D(0))
        arn, sid = key.rsplit("/", 1)
        controls = SessionControls(ledger, arn, sid)
        assert controls.freeze()
        with pytest.raises(SessionFrozenError):
            ledger.reserve(key, "d", D(1), view, "external", 600, T)
        assert controls.unfreeze()
        assert ledger.reserve(key, "d", D(1), view, "external", 600, T, tool="t")[0]
        assert [(h.hold_id, h.tool) for h in controls.holds()] == [("d", "t")]


# -- four processes --------------------------------------------------------------------------


def _barrier_client(url: str) -> redis.RedisCluster:
    return redis.RedisCluster.from_url(url, socket_timeout=CLIENT_TIMEOUT)


def _charge_worker(
    url: str, prefix: str, seed: int, charges: int, keys: list[str]
) -> dict[str, str]:
    """One process: random reserve -> commit (80 %) or release cycles over every session."""
    ledger = RedisLedger.from_url(url, cluster=True, prefix=prefix, timeout=CLIENT_TIMEOUT)
    client = _barrier_client(url)
    client.rpush(f"{{{prefix}}}:ready", seed)
    assert client.blpop([f"{{{prefix}}}:go"], timeout=BARRIER_SECONDS) is not None
    rng, view = random.Random(seed), ServerView(BUDGET, D(0), T)
    committed = dict.fromkeys(keys, D(0))
    for i in range(charges):
        key, amount, hold_id = rng.choice(keys), D(rng.randint(1, 500)).scaleb(-2), f"{seed}-{i}"
        kind = rng.choice(["session", "external"])
        if not ledger.reserve(key, hold_id, amount, view, kind, 600, T)[0]:  # type: ignore[arg-type]
            continue
        if rng.random() < 0.8:
            actual = D(rng.randint(0, int(amount * 100))).scaleb(-2)
            assert ledger.commit(key, hold_id, actual, T, T)
            committed[key] += actual
        else:
            assert ledger.release(key, hold_id, T)
    return {key: str(value) for key, value in committed.items()}


def test_four_processes_never_spend_more_than_any_sessions_budget(cluster: LocalCluster) -> None:
    prefix, charges = f"test-{uuid.uuid4().hex}", 250
    keys = one_session_per_master(cluster, ledger_on(cluster, prefix))
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, cluster.url, prefix, str(seed), str(charges), *keys],
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    try:
        client = _barrier_client(cluster.url)
        for _ in workers:
            assert client.blpop([f"{{{prefix}}}:ready"], timeout=BARRIER_SECONDS) is not None
        client.rpush(f"{{{prefix}}}:go", *range(len(workers)))
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
    ledger = ledger_on(cluster, prefix)
    bound = 0
    for key in keys:
        totals = ledger.totals(key, None, T)
        committed = sum(D(r[key]) for r in results)
        assert committed == totals.unreflected + totals.external
        assert committed <= BUDGET
        assert totals.held == 0
        bound += totals.effective < D(5)  # the largest charge: the budget did bind
    assert bound == len(keys)


# -- a master killed mid-run -------------------------------------------------------------------


def test_a_killed_master_fails_closed_then_recovers_with_no_money_lost(
    cluster: LocalCluster, payment_session: PaymentSessionFixture
) -> None:
    ledger = ledger_on(cluster, f"test-{uuid.uuid4().hex}", timeout=2.0)
    guard = payment_session.guard(ledger=ledger)
    key = f"{payment_session.arn}/{payment_session.session_id}"
    other = next(
        k
        for k in one_session_per_master(cluster, ledger)
        if cluster.node_of(ledger.keys(k)[0]) is not cluster.node_of(ledger.keys(key)[0])
    )
    guard.reserve("2.00", settlement="external").commit()
    open_hold = guard.reserve("3.00", tool="search")
    assert ledger.reserve(other, "x", D(1), ServerView(D(10), D(0), T), "external", 600, T)[0]
    before = guard.snapshot()
    assert (before.held, before.external) == (Money.of("3.00"), Money.of("2.00"))

    node = cluster.node_of(ledger.keys(key)[0])
    node.kill()  # SIGKILL: no shutdown, no last save; the AOF was fsynced on every write
    with pytest.raises(LedgerUnavailableError) as down:
        guard.reserve("1.00")
    assert down.value.session_id == payment_session.session_id
    assert "Payment blocked" in down.value.model_message
    with pytest.raises(LedgerUnavailableError):
        open_hold.commit()
    assert open_hold.state == "held"

    node.start()  # same port, same directory: nodes.conf and the AOF bring it back
    cluster.wait_ok()
    open_hold.commit("2.50")
    after = guard.snapshot()
    assert after.held == Money.zero()
    assert after.external == Money.of("2.00")
    assert after.pending_session == Money.of("2.50")
    assert after.effective_available == Money.of("5.50")
    assert ledger.totals(other, None, T)[1:] == (D(1), D(0), D(0))  # the other master's too
    guard.reserve("5.50").release()


if __name__ == "__main__":  # a worker of the four-process test
    url, prefix, seed, charges, *keys = sys.argv[1:]
    print(json.dumps(_charge_worker(url, prefix, int(seed), int(charges), keys)))
