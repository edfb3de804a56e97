"""``spendguard session show --redis-url``: holds of other processes, read from Redis."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from conftest import PaymentSessionFixture
from redis_server import (  # noqa: F401 - fixtures
    RedisServer,
    redis_server_fixture,
    redis_url_fixture,
)

from spendguard.cli import main
from spendguard.redis_ledger import RedisLedger


def test_session_show_reads_holds_from_a_redis_ledger(
    payment_session: PaymentSessionFixture,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "emulator")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator")
    guard = payment_session.guard(ledger=RedisLedger.from_url(redis_url))
    hold = guard.reserve("0.40")
    args = [
        "session",
        "show",
        "--endpoint-url",
        payment_session.emulator.endpoint_url,
        "--payment-manager-arn",
        payment_session.arn,
        "--session-id",
        payment_session.session_id,
        "--user-id",
        payment_session.user_id,
        "--json",
    ]
    assert main([*args, "--redis-url", redis_url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (Decimal(shown["held"]), Decimal(shown["effective_available"])) == (
        Decimal("0.40"),
        Decimal("9.60"),
    )
    assert main(args) == 0  # without the ledger, the holds of others are not seen
    assert Decimal(json.loads(capsys.readouterr().out)["held"]) == 0
    hold.release()
