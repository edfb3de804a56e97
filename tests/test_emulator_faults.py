"""Fault injection (errors, delays, dropped connections), call counts and the clock."""

from __future__ import annotations

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from conftest import PaymentSessionFixture

from spendguard.emulator import PaymentsEmulator, x402_payment_input

NO_RETRY = Config(retries={"total_max_attempts": 1})


def _get(session: PaymentSessionFixture, client: object = None) -> dict[str, object]:
    c = client or session.client
    return dict(
        c.get_payment_session(  # type: ignore[attr-defined]
            paymentManagerArn=session.arn,
            paymentSessionId=session.session_id,
            userId=session.user_id,
        )
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 429),
        ("InternalServerException", 500),
        ("AccessDeniedException", 403),
        ("ResourceNotFoundException", 404),
    ],
)
def test_fail_answers_the_code_n_times_with_the_model_status(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture, code: str, status: int
) -> None:
    client = emulator.client(NO_RETRY)
    emulator.faults.fail("GetPaymentSession", code, times=2)
    for _ in range(2):
        with pytest.raises(ClientError) as info:
            _get(payment_session, client)
        assert info.value.response["Error"]["Code"] == code
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert _get(payment_session, client)["paymentSession"]


def test_botocore_retries_through_injected_throttling(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture
) -> None:
    client = emulator.client(Config(retries={"mode": "standard", "max_attempts": 3}))
    emulator.faults.fail("GetPaymentSession", "InternalServerException", times=1)
    before = emulator.faults.calls("GetPaymentSession")
    response = _get(payment_session, client)
    assert response["ResponseMetadata"]["RetryAttempts"] == 1  # type: ignore[index]
    assert emulator.faults.calls("GetPaymentSession") - before == 2


def test_fault_only_hits_its_operation(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture
) -> None:
    client = emulator.client(NO_RETRY)
    emulator.faults.fail("ProcessPayment", "ThrottlingException")
    assert _get(payment_session, client)["paymentSession"]
    with pytest.raises(ClientError):
        payment_session.pay("0.01", client=client, token=False)


def test_delay_trips_the_client_read_timeout(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture
) -> None:
    client = emulator.client(Config(read_timeout=0.1, retries={"total_max_attempts": 1}))
    emulator.faults.delay("GetPaymentSession", 0.4)
    with pytest.raises(ReadTimeoutError):
        _get(payment_session, client)
    assert _get(payment_session, client)["paymentSession"]


def test_drop_closes_the_connection_without_an_answer(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture
) -> None:
    client = emulator.client(NO_RETRY)
    emulator.faults.drop("GetPaymentSession")
    with pytest.raises(ConnectionClosedError):
        _get(payment_session, client)
    assert _get(payment_session, client)["paymentSession"]


def test_drop_after_processing_loses_the_reply_but_keeps_the_payment(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture
) -> None:
    client = emulator.client(NO_RETRY)
    emulator.faults.drop("ProcessPayment", after=True)
    with pytest.raises(ConnectionClosedError):
        payment_session.pay("1.50", client=client, token=False)
    assert str(payment_session.available()) == "8.50"


def test_wildcard_fault_and_clear(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture
) -> None:
    client = emulator.client(NO_RETRY)
    emulator.faults.fail("*", "ThrottlingException", times=5)
    with pytest.raises(ClientError):
        _get(payment_session, client)
    emulator.faults.clear()
    assert _get(payment_session, client)["paymentSession"]


def test_fault_arguments_are_checked(emulator: PaymentsEmulator) -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        emulator.faults.fail("GetPaymentSessions", "ThrottlingException")
    with pytest.raises(ValueError, match="times"):
        emulator.faults.drop("GetPaymentSession", times=0)


def test_injected_clock_drives_expiry_and_timestamps() -> None:
    now = [1_800_000_000.0]
    with PaymentsEmulator(clock=lambda: now[0]) as emulator:
        made = emulator.create_session("1.00", expiry_minutes=15)
        client = emulator.client(NO_RETRY)
        now[0] += 14 * 60
        got = client.get_payment_session(
            paymentManagerArn=made.payment_manager_arn,
            paymentSessionId=made.payment_session_id,
            userId=made.user_id,
        )
        assert got["paymentSession"]["createdAt"].timestamp() == 1_800_000_000.0
        emulator.advance(60)
        assert emulator.now() == 1_800_000_000.0 + 15 * 60
        with pytest.raises(ClientError, match="expired"):
            client.process_payment(
                paymentManagerArn=made.payment_manager_arn,
                paymentSessionId=made.payment_session_id,
                userId=made.user_id,
                paymentInstrumentId=made.payment_instrument_id,
                paymentType="CRYPTO_X402",
                paymentInput=x402_payment_input("0.01"),  # type: ignore[arg-type]
            )


def test_stop_closes_idle_keep_alive_connections_and_reset_forgets() -> None:
    emulator = PaymentsEmulator().start()
    made = emulator.create_session("1.00")
    client = emulator.client(NO_RETRY)
    client.get_payment_session(
        paymentManagerArn=made.payment_manager_arn,
        paymentSessionId=made.payment_session_id,
        userId=made.user_id,
    )
    assert emulator.faults.calls() == 1
    emulator.reset()
    assert emulator.faults.calls() == 0
    with pytest.raises(KeyError):
        emulator.available(made.payment_session_id)
    emulator.stop()  # returns although the client's connection is still open
    emulator.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = emulator.endpoint_url
