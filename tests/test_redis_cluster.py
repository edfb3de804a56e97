"""The Redis ledger on a real Redis Cluster: three masters started here, redis-py's
``RedisCluster``, sessions spread over slots, four processes, and a master killed mid-run."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar

import pytest
import redis
from redis.crc import key_slot
from redis_cluster import LocalCluster
from redis_server import RedisServer, redis_binary

from spendguard import LedgerUnavailableError, Money
from spendguard.controls import SessionControls, SessionFrozenError
from spendguard.ledger import ServerView, Settlement
from spendguard.redis_ledger import RedisLedger

if TYPE_CHECKING:  # the worker processes need not import the emulator
    from conftest import PaymentSessionFixture

pytestmark = pytest.mark.redis

ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:payment-manager/pm-1"
T = 1_800_000_000.0
D = Decimal
R = TypeVar("R")
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


# -- an ACL user, as on ElastiCache (RBAC) and MemoryDB --------------------------------------

# The rules docs/redis.md gives: the scripts' commands on the prefix's keys, and for a cluster
# client the layout and command table it reads when it connects.
ACL_RULES = ("~spendguard:*", "+@read", "+@write", "+@scripting", "+time")
CLUSTER_ACL_RULES = ("+cluster|slots", "+command", "+info")


def _acl_user(port: int, *rules: str) -> None:
    admin = redis.Redis(port=port, socket_timeout=5)
    try:
        admin.execute_command("ACL", "SETUSER", "sg-test", "reset", "on", ">s3cret", *rules)
    finally:
        admin.close()


def test_an_acl_user_with_the_documented_rules_runs_the_ledger_on_the_cluster(
    cluster: LocalCluster,
) -> None:
    for node in cluster.nodes:
        _acl_user(node.port, *ACL_RULES, *CLUSTER_ACL_RULES)
    ledger = RedisLedger.from_url(cluster.url, cluster=True, username="sg-test", password="s3cret")
    view = ServerView(D(10), D(0), T)
    for key in one_session_per_master(cluster, ledger):
        assert ledger.reserve(key, "a", D(2), view, "session", 600, T, tool="search")[0]
        assert ledger.commit(key, "a", D(1), T, T)
        assert ledger.reserve(key, "b", D(1), view, "external", 600, T)[0]
        arn, sid = key.rsplit("/", 1)
        controls = SessionControls(ledger, arn, sid)
        assert [h.hold_id for h in controls.holds()] == ["b"]
        assert controls.release("b") is not None
        assert controls.freeze()
        assert controls.unfreeze()
        assert ledger.totals(key, None, T)[1:] == (D(0), D(1), D(0))
    with pytest.raises(LedgerUnavailableError):  # a cluster client connects at once
        RedisLedger.from_url(cluster.url, cluster=True, username="sg-test", password="nope")


def test_an_acl_user_with_the_documented_rules_runs_the_ledger_on_one_redis() -> None:
    server = RedisServer(redis_binary())
    server.start()
    try:
        _acl_user(server.port, *ACL_RULES)
        url = f"redis://sg-test:s3cret@127.0.0.1:{server.port}/0"
        ledger, key = RedisLedger.from_url(url), f"{ARN}/payment-session-1"
        assert ledger.reserve(key, "a", D(2), ServerView(D(10), D(0), T), "session", 600, T)[0]
        assert ledger.commit(key, "a", D(2), T, T)
        assert ledger.set_frozen(key, True)
        assert ledger.is_frozen(key)
        assert ledger.holds(key, T) == []
        outside = RedisLedger.from_url(url, prefix="elsewhere")  # keys the user may not touch
        with pytest.raises(LedgerUnavailableError, match=r"(?i)perm"):
            outside.totals(key, None, T)
    finally:
        server.close()


# -- four processes --------------------------------------------------------------------------

RECOVERY_SECONDS = 60.0


def _barrier_client(url: str) -> redis.RedisCluster:
    return redis.RedisCluster.from_url(url, socket_timeout=CLIENT_TIMEOUT)


class _Worker:
    """One process's ledger calls. A call that finds Redis unreachable is sent again, the very
    same call, until it answers (bounded): the ledger is idempotent per hold id, so a retry of
    a call that ran before its reply was lost answers as it did and changes nothing more."""

    def __init__(self, url: str, prefix: str, seed: int) -> None:
        self.ledger = RedisLedger.from_url(url, cluster=True, prefix=prefix, timeout=5.0)
        self.client = _barrier_client(url)
        self.prefix, self.seed, self.failed = prefix, seed, False

    def signal(self, name: str) -> None:
        self.client.rpush(f"{{{self.prefix}}}:{name}", self.seed)

    def wait(self, name: str) -> None:
        assert self.client.blpop([f"{{{self.prefix}}}:{name}"], BARRIER_SECONDS) is not None

    def call(self, operation: Callable[..., R], *args: object) -> R:
        deadline = time.monotonic() + RECOVERY_SECONDS
        while True:
            try:
                return operation(*args)
            except LedgerUnavailableError:
                if not self.failed:
                    self.failed = True
                    self.signal("failed")
                assert time.monotonic() < deadline, "the cluster did not come back"
                time.sleep(0.02)


def _charge_worker(
    url: str, prefix: str, seed: int, charges: int, keys: list[str], pause: bool
) -> dict[str, str]:
    """One process: reserve -> commit (80 %) or release cycles over the sessions in turn; with
    ``pause``, it stops halfway until the test has killed a master."""
    worker = _Worker(url, prefix, seed)
    worker.signal("ready")
    worker.wait("go")
    rng, view = random.Random(seed), ServerView(BUDGET, D(0), T)
    committed = dict.fromkeys(keys, D(0))
    for i in range(charges):
        if pause and i == charges // 2:
            worker.signal("half")
            worker.wait("killed")
        key, amount, hold_id = keys[i % len(keys)], D(rng.randint(1, 500)).scaleb(-2), f"{seed}-{i}"
        kind: Settlement = rng.choice(["session", "external"])
        ledger = worker.ledger
        if not worker.call(ledger.reserve, key, hold_id, amount, view, kind, 600, T)[0]:
            continue
        if rng.random() < 0.8:
            actual = D(rng.randint(0, int(amount * 100))).scaleb(-2)
            assert worker.call(ledger.commit, key, hold_id, actual, T, T)
            committed[key] += actual
        else:
            assert worker.call(ledger.release, key, hold_id, T)
    return {key: str(value) for key, value in committed.items()}


class _Run:
    """Four worker processes over ``keys``, started together through a barrier."""

    def __init__(self, cluster: LocalCluster, keys: list[str], charges: int, pause: bool) -> None:
        self.prefix = f"test-{uuid.uuid4().hex}"
        self.client = _barrier_client(cluster.url)
        args = [cluster.url, self.prefix, str(charges), "pause" if pause else "run", *keys]
        self.workers = [
            subprocess.Popen(
                [sys.executable, __file__, str(seed), *args], stdout=subprocess.PIPE, text=True
            )
            for seed in range(4)
        ]

    def wait_all(self, name: str) -> None:
        for _ in self.workers:
            assert self.client.blpop([f"{{{self.prefix}}}:{name}"], BARRIER_SECONDS) is not None

    def signal_all(self, name: str) -> None:
        self.client.rpush(f"{{{self.prefix}}}:{name}", *range(len(self.workers)))

    def results(self) -> list[dict[str, str]]:
        results = []
        for worker in self.workers:
            out, _ = worker.communicate(timeout=120)
            assert worker.returncode == 0
            results.append(json.loads(out))
        return results

    def close(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()


def _check_books(
    cluster: LocalCluster, prefix: str, keys: list[str], results: list[dict[str, str]]
) -> None:
    ledger = RedisLedger.from_url(cluster.url, cluster=True, prefix=prefix, timeout=5.0)
    for key in keys:
        totals = ledger.totals(key, None, T)
        committed = sum(D(r[key]) for r in results)
        assert committed == totals.unreflected + totals.external  # every charge, once
        assert committed <= BUDGET
        assert totals.held == 0


def test_four_processes_never_spend_more_than_any_sessions_budget(cluster: LocalCluster) -> None:
    keys = one_session_per_master(cluster, ledger_on(cluster, "keys"))
    run = _Run(cluster, keys, 200, pause=False)
    try:
        run.wait_all("ready")
        run.signal_all("go")
        results = run.results()
    finally:
        run.close()
    _check_books(cluster, run.prefix, keys, results)
    ledger = ledger_on(cluster, run.prefix)
    assert all(ledger.totals(key, None, T).effective < D(5) for key in keys)  # budgets bound


def test_four_processes_ride_out_a_master_killed_mid_run(cluster: LocalCluster) -> None:
    keys = one_session_per_master(cluster, ledger_on(cluster, "keys"))
    run = _Run(cluster, keys, 80, pause=True)
    barrier = cluster.node_of(f"{{{run.prefix}}}:ready")
    victim = next(
        cluster.node_of(ledger_on(cluster, run.prefix).keys(key)[0])
        for key in keys
        if cluster.node_of(ledger_on(cluster, run.prefix).keys(key)[0])
        not in (barrier, cluster.nodes[0])
    )
    try:
        run.wait_all("ready")
        run.signal_all("go")
        run.wait_all("half")
        victim.kill()  # SIGKILL while every worker holds money on it and waits
        run.signal_all("killed")
        run.wait_all("failed")  # each worker found the master gone (and blocked)
        victim.start()  # same port and directory: the AOF brings every write back
        cluster.wait_ok()
        results = run.results()
    finally:
        run.close()
    _check_books(cluster, run.prefix, keys, results)


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


if __name__ == "__main__":  # a worker of the four-process tests
    seed, url, prefix, charges, mode, *keys = sys.argv[1:]
    result = _charge_worker(url, prefix, int(seed), int(charges), keys, mode == "pause")
    print(json.dumps(result))
