"""Payment session operations through unmodified boto3 against the emulator."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import PaymentSessionFixture

from spendguard.emulator import (
    DEFAULT_MANAGER_ARN,
    PaymentsEmulator,
    response_problems,
    x402_payment_input,
)

ARN = DEFAULT_MANAGER_ARN


def _code(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    error = info.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]


def test_create_then_get_round_trips_limits_and_times(emulator: PaymentsEmulator) -> None:
    client = emulator.client()
    created = client.create_payment_session(
        paymentManagerArn=ARN,
        userId="creator",
        expiryTimeInMinutes=30,
        limits={"maxSpendAmount": {"value": "25.50", "currency": "USD"}},
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201  # the model's responseCode
    session = created["paymentSession"]
    assert session["paymentSessionId"].startswith("payment-session-")
    assert len(session["paymentSessionId"]) == 31
    got = client.get_payment_session(
        paymentManagerArn=ARN, paymentSessionId=session["paymentSessionId"], userId="creator"
    )["paymentSession"]
    assert got["limits"]["maxSpendAmount"] == {"value": "25.50", "currency": "USD"}
    assert got["availableLimits"]["availableSpendAmount"]["value"] == "25.50"
    assert got["expiryTimeInMinutes"] == 30
    now = datetime.fromtimestamp(emulator.now(), tz=timezone.utc)
    assert abs(got["createdAt"] - now) < timedelta(seconds=5)
    assert got["createdAt"].tzinfo is not None


def test_session_without_limits_has_no_available_limits(emulator: PaymentsEmulator) -> None:
    client = emulator.client()
    session = client.create_payment_session(
        paymentManagerArn=ARN, userId="u-nolimit", expiryTimeInMinutes=15
    )["paymentSession"]
    assert "limits" not in session
    assert "availableLimits" not in session


def test_create_is_idempotent_by_client_token(emulator: PaymentsEmulator) -> None:
    client = emulator.client()
    token = str(uuid.uuid4())
    kwargs = {
        "paymentManagerArn": ARN,
        "userId": "idem",
        "expiryTimeInMinutes": 60,
        "clientToken": token,
        "limits": {"maxSpendAmount": {"value": "1.00", "currency": "USD"}},
    }
    first = client.create_payment_session(**kwargs)["paymentSession"]  # type: ignore[arg-type]
    again = client.create_payment_session(**kwargs)["paymentSession"]  # type: ignore[arg-type]
    assert first["paymentSessionId"] == again["paymentSessionId"]
    kwargs["expiryTimeInMinutes"] = 90
    with pytest.raises(ClientError) as info:
        client.create_payment_session(**kwargs)  # type: ignore[arg-type]
    assert _code(info) == ("ValidationException", 400)
    assert info.value.response["reason"] == "IdempotentParameterMismatchException"  # type: ignore[typeddict-item]


def test_other_user_is_denied_and_unknown_session_is_not_found(
    payment_session: PaymentSessionFixture,
) -> None:
    client = payment_session.client
    with pytest.raises(ClientError) as info:
        client.get_payment_session(
            paymentManagerArn=payment_session.arn,
            paymentSessionId=payment_session.session_id,
            userId="mallory",
        )
    assert _code(info) == ("AccessDeniedException", 403)
    with pytest.raises(ClientError) as info:
        client.get_payment_session(
            paymentManagerArn=payment_session.arn,
            paymentSessionId="payment-session-doesnotexist123",
            userId=payment_session.user_id,
        )
    assert _code(info) == ("ResourceNotFoundException", 404)
    other_arn = ARN.replace("123456789012", "210987654321")
    with pytest.raises(ClientError) as info:
        client.get_payment_session(
            paymentManagerArn=other_arn,
            paymentSessionId=payment_session.session_id,
            userId=payment_session.user_id,
        )
    assert _code(info) == ("ResourceNotFoundException", 404)


def test_list_paginates_with_botocore_paginator(emulator: PaymentsEmulator) -> None:
    user = f"lister-{uuid.uuid4().hex[:8]}"
    made = {emulator.create_session("1.00", user_id=user).payment_session_id for _ in range(7)}
    emulator.create_session("1.00", user_id="someone-else")
    client = emulator.client()
    pages = list(
        client.get_paginator("list_payment_sessions").paginate(
            paymentManagerArn=ARN, userId=user, PaginationConfig={"PageSize": 3}
        )
    )
    assert [len(p["paymentSessions"]) for p in pages] == [3, 3, 1]
    listed = [s["paymentSessionId"] for p in pages for s in p["paymentSessions"]]
    assert sorted(listed) == sorted(made)
    assert "nextToken" not in pages[-1]


def test_list_rejects_bad_token_and_page_size(emulator: PaymentsEmulator) -> None:
    client = emulator.client()
    with pytest.raises(ClientError) as info:
        client.list_payment_sessions(paymentManagerArn=ARN, userId="u", nextToken="garbage!")
    assert _code(info) == ("ValidationException", 400)
    with pytest.raises(ClientError) as info:
        client.list_payment_sessions(paymentManagerArn=ARN, userId="u", maxResults=0)
    assert _code(info) == ("ValidationException", 400)


def test_delete_removes_the_session_for_its_owner_only(
    payment_session: PaymentSessionFixture,
) -> None:
    client, sid = payment_session.client, payment_session.session_id
    with pytest.raises(ClientError) as info:
        client.delete_payment_session(
            paymentManagerArn=payment_session.arn, paymentSessionId=sid, userId="mallory"
        )
    assert _code(info) == ("AccessDeniedException", 403)
    done = client.delete_payment_session(
        paymentManagerArn=payment_session.arn, paymentSessionId=sid, userId="user-1"
    )
    assert done["status"] == "DELETED"
    with pytest.raises(ClientError) as info:
        payment_session.get()
    assert _code(info) == ("ResourceNotFoundException", 404)


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"maxSpendAmount": {"value": "-1", "currency": "USD"}}, "limits.maxSpendAmount.value"),
        ({"maxSpendAmount": {"value": "1e3", "currency": "USD"}}, "limits.maxSpendAmount.value"),
        ({"maxSpendAmount": {"value": "9" * 40, "currency": "USD"}}, "limits.maxSpendAmount.value"),
        ({"maxSpendAmount": {"value": "NaN", "currency": "USD"}}, "limits.maxSpendAmount.value"),
        (
            {"maxSpendAmount": {"value": "1.00", "currency": "EUR"}},
            "limits.maxSpendAmount.currency",
        ),
        ({"maxSpendAmount": {"value": 5, "currency": "USD"}}, "limits.maxSpendAmount.value"),
    ],
)
def test_server_rejects_bad_limits(
    emulator: PaymentsEmulator, limits: dict[str, object], field: str
) -> None:
    # Client-side validation off: the request must reach the server to prove it checks.
    client = emulator.client(Config(parameter_validation=False))
    with pytest.raises(ClientError) as info:
        client.create_payment_session(
            paymentManagerArn=ARN,
            userId="u",
            expiryTimeInMinutes=60,
            limits=limits,  # type: ignore[arg-type]
        )
    assert _code(info) == ("ValidationException", 400)
    fields = [f["name"] for f in info.value.response["fieldList"]]  # type: ignore[typeddict-item]
    assert field in fields


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"expiryTimeInMinutes": 481}, "expiryTimeInMinutes"),  # model max (botocore skips it)
        ({"expiryTimeInMinutes": 5}, "expiryTimeInMinutes"),
        ({"expiryTimeInMinutes": True}, "expiryTimeInMinutes"),
        ({"paymentManagerArn": "arn:aws:s3:::" + "b" * 60}, "paymentManagerArn"),
        ({"clientToken": "short"}, "clientToken"),
    ],
)
def test_server_validates_against_the_model(
    emulator: PaymentsEmulator, kwargs: dict[str, object], field: str
) -> None:
    client = emulator.client(Config(parameter_validation=False))
    params: dict[str, object] = {
        "paymentManagerArn": ARN,
        "userId": "u",
        "expiryTimeInMinutes": 60,
        **kwargs,
    }
    with pytest.raises(ClientError) as info:
        client.create_payment_session(**params)  # type: ignore[arg-type]
    assert _code(info) == ("ValidationException", 400)
    assert field in [f["name"] for f in info.value.response["fieldList"]]  # type: ignore[typeddict-item]


@pytest.mark.parametrize("user", [{}, {"userId": ""}], ids=["absent", "empty"])
def test_without_a_user_id_the_caller_acts_for_no_user(
    emulator: PaymentsEmulator, user: dict[str, str]
) -> None:
    # userId is optional in the model (and may be empty): such a caller is the user "".
    client = emulator.client()
    made = client.create_payment_session(paymentManagerArn=ARN, expiryTimeInMinutes=60, **user)
    assert made["paymentSession"]["userId"] == ""
    session_id = made["paymentSession"]["paymentSessionId"]
    got = client.get_payment_session(paymentManagerArn=ARN, paymentSessionId=session_id, **user)
    assert got["paymentSession"]["userId"] == ""
    assert response_problems("GetPaymentSession", got) == []
    listed = client.list_payment_sessions(paymentManagerArn=ARN, **user)["paymentSessions"]
    assert session_id in [s["paymentSessionId"] for s in listed]
    assert {s["userId"] for s in listed} == {""}
    with pytest.raises(ClientError) as info:  # a user's own session stays theirs
        client.get_payment_session(paymentManagerArn=ARN, paymentSessionId=session_id, userId="u")
    assert _code(info) == ("AccessDeniedException", 403)


def test_without_a_user_id_a_users_session_is_denied_and_not_listed(
    payment_session: PaymentSessionFixture,
) -> None:
    client, arn, sid = payment_session.client, payment_session.arn, payment_session.session_id
    with pytest.raises(ClientError) as info:
        client.get_payment_session(paymentManagerArn=arn, paymentSessionId=sid)
    assert _code(info) == ("AccessDeniedException", 403)
    with pytest.raises(ClientError) as info:
        client.process_payment(
            paymentManagerArn=arn,
            paymentSessionId=sid,
            paymentInstrumentId=payment_session.instrument_id,
            paymentType="CRYPTO_X402",
            paymentInput=x402_payment_input("0.01"),  # type: ignore[arg-type]
        )
    assert _code(info) == ("AccessDeniedException", 403)
    assert payment_session.available() == Decimal("10.00")
    listed = client.list_payment_sessions(paymentManagerArn=arn)["paymentSessions"]
    assert sid not in [s["paymentSessionId"] for s in listed]


def test_server_side_spend_moves_what_clients_see(
    new_payment_session: Callable[..., PaymentSessionFixture],
) -> None:
    session = new_payment_session("2.00")
    before = session.get()["availableLimits"]["updatedAt"]
    session.emulator.advance(3)
    assert session.emulator.spend(session.session_id, "0.75") == Decimal("1.25")
    after = session.get()["availableLimits"]
    assert after["availableSpendAmount"]["value"] == "1.25"
    assert timedelta(seconds=3) <= after["updatedAt"] - before < timedelta(seconds=4)
    with pytest.raises(ValueError, match="exceeds"):
        session.emulator.spend(session.session_id, "1.26")
