"""The guard on a Redis ledger: async paths, and failures that name the session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from conftest import PaymentSessionFixture
from redis_server import (  # noqa: F401 - fixtures
    RedisServer,
    redis_binary,
    redis_server_fixture,
    redis_url_fixture,
)

from spendguard import LedgerDataLostError, LedgerUnavailableError, Money, SpendGuard
from spendguard.pricing import settle
from spendguard.redis_ledger import RedisLedger


def guard_on(s: PaymentSessionFixture, url: str) -> SpendGuard:
    return s.guard(ledger=RedisLedger.from_url(url, prefix=f"t-{uuid.uuid4().hex}"))


def test_async_holds_on_a_shared_ledger(
    payment_session: PaymentSessionFixture, redis_url: str
) -> None:
    guard = guard_on(payment_session, redis_url)

    async def main() -> None:
        async with guard.areserve("4.00") as first:
            assert (await guard.asnapshot()).held == Money.of("4.00")
        assert first.state == "committed"
        second = await guard.areserve("5.00")
        await second.arelease()
        third = await guard.areserve("5.00")
        await third.acommit("2.50")
        assert not (await guard.acheck("3.51")).allowed
        assert (await guard.acheck("3.50")).allowed

    asyncio.run(main())
    snap = guard.snapshot()
    assert snap.held == Money.zero()
    assert snap.effective_available == Money.of("3.50")


@pytest.fixture
def lone_server() -> Iterator[RedisServer]:
    server = RedisServer(redis_binary())
    server.start()
    yield server
    server.close()


def test_ledger_failure_names_the_session_and_recovers(
    payment_session: PaymentSessionFixture, lone_server: RedisServer
) -> None:
    ledger = RedisLedger.from_url(lone_server.url, prefix=f"t-{uuid.uuid4().hex}")
    guard = payment_session.guard(ledger=ledger)
    hold = guard.reserve("1.00")
    lone_server.stop()
    with pytest.raises(LedgerUnavailableError) as info:
        guard.reserve("1.00")
    assert info.value.session_id == payment_session.session_id
    assert info.value.__cause__ is not None
    with pytest.raises(LedgerUnavailableError):
        hold.commit()
    assert hold.state == "held"
    settle(hold, ran=True)  # what adapters call after a tool: logs, never breaks the run
    assert hold.state == "held"  # left to lapse into a charge of its full amount
    lone_server.start()  # back without its data: the hold is gone, so is any record of it
    with pytest.raises(LedgerDataLostError, match="reopen") as lost:
        guard.reserve("1.00")
    assert lost.value.session_id == payment_session.session_id
    with pytest.raises(LedgerDataLostError):
        guard.snapshot()
    # The operator checks the session on the payment service and reopens it.
    assert ledger.reopen(payment_session.arn, payment_session.session_id)
    guard.reserve("1.00", settlement="external").commit()
    snap = guard.snapshot()
    assert (snap.held, snap.external) == (Money.zero(), Money.of("1.00"))
    assert snap.effective_available == Money.of("9.00")
