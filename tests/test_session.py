"""Reading the session: strict parsing, fail-closed absences, errors mapped by code."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.stub import Stubber
from support import ARN, SID, T0, USER, Clock, SequenceClient, Session, client, stubbed

from spendguard import (
    BudgetExceededError,
    MalformedSessionError,
    SessionAccessDeniedError,
    SessionConfigurationError,
    SessionError,
    SessionNotFoundError,
    SessionRequestError,
    SessionUnavailableError,
    SpendGuard,
)


def guard(c: Any, clock: Clock | None = None) -> SpendGuard:
    return SpendGuard(ARN, SID, user_id=USER, client=c, **(clock or Clock()).kwargs)


def test_response_is_parsed_exactly_and_in_utc() -> None:
    session = Session(available="7.005")
    with stubbed(session.response()) as (c, stub):
        snap = guard(c).snapshot()
        stub.assert_no_pending_responses()
    assert snap.max_spend is not None
    assert snap.max_spend.amount == Decimal("10.00")
    assert snap.server_available.amount == Decimal("7.005")
    assert snap.expires_at == T0 + timedelta(minutes=50)
    assert snap.updated_at.tzinfo is timezone.utc
    assert snap.expires_at.tzinfo is timezone.utc


def test_user_and_agent_travel_with_the_request() -> None:
    c = client()
    stub = Stubber(c)
    expected = {
        "paymentManagerArn": ARN,
        "paymentSessionId": SID,
        "userId": USER,
        "agentName": "shopper",
    }
    stub.add_response("get_payment_session", Session().response(), expected)
    with stub:
        SpendGuard(ARN, SID, user_id=USER, agent_name="shopper", client=c, **Clock().kwargs).check(
            1
        )
        stub.assert_no_pending_responses()


def _body() -> dict[str, Any]:
    return Session().response()


def _without(path: str) -> dict[str, Any]:
    body = _body()
    node = body["paymentSession"]
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    del node[last]
    return body


def _with(path: str, value: Any) -> dict[str, Any]:
    body = _body()
    node = body["paymentSession"]
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return body


MALFORMED_BODIES = [
    ({}, "paymentSession"),
    ({"paymentSession": None}, "paymentSession"),
    ({"paymentSession": "x"}, "paymentSession"),
    (_without("paymentSessionId"), "paymentSessionId"),
    (_with("paymentSessionId", "payment-session-OTHERxxxxxxxxxx"), "paymentSessionId"),
    (_without("expiryTimeInMinutes"), "expiryTimeInMinutes"),
    (_with("expiryTimeInMinutes", "60"), "expiryTimeInMinutes"),
    (_with("expiryTimeInMinutes", -5), "expiryTimeInMinutes"),
    (_with("expiryTimeInMinutes", True), "expiryTimeInMinutes"),
    (_without("createdAt"), "createdAt"),
    (_with("createdAt", "2026-11-26T12:00:00Z"), "createdAt"),
    (_with("createdAt", datetime(2026, 11, 26, 12, 0)), "createdAt"),
    (_without("updatedAt"), "updatedAt"),
    (_with("limits.maxSpendAmount.value", "NaN"), "limits.maxSpendAmount.value"),
    (_with("limits.maxSpendAmount.value", 10), "limits.maxSpendAmount.value"),
    (_with("limits.maxSpendAmount.currency", "EUR"), "limits.maxSpendAmount.currency"),
    (_without("limits.maxSpendAmount.value"), "value"),
    (
        _with("availableLimits.availableSpendAmount.value", "-1.00"),
        "availableLimits.availableSpendAmount.value",
    ),
    (
        _with("availableLimits.availableSpendAmount.value", "1e3"),
        "availableLimits.availableSpendAmount.value",
    ),
    (
        _with("availableLimits.availableSpendAmount.value", " 5.00"),
        "availableLimits.availableSpendAmount.value",
    ),
    (
        _with("availableLimits.availableSpendAmount.value", "Infinity"),
        "availableLimits.availableSpendAmount.value",
    ),
    (
        _with("availableLimits.availableSpendAmount.currency", "usd"),
        "availableLimits.availableSpendAmount.currency",
    ),
    (
        _with("availableLimits.availableSpendAmount.value", "10.01"),
        "availableLimits.availableSpendAmount",
    ),
    (
        _with("availableLimits.availableSpendAmount", "10.00"),
        "availableLimits.availableSpendAmount",
    ),
    (_with("availableLimits", []), "availableLimits"),
    (_with("availableLimits.updatedAt", 1764158400), "availableLimits.updatedAt"),
]


@pytest.mark.parametrize(("body", "field"), MALFORMED_BODIES)
def test_malformed_session_fails_closed_and_changes_nothing(body: Any, field: str) -> None:
    assert len(MALFORMED_BODIES) >= 15
    clock = Clock()
    c = SequenceClient(_body(), copy.deepcopy(body))
    g = guard(c, clock)
    hold = g.reserve("2.00")
    before = g.snapshot()
    with pytest.raises(MalformedSessionError) as info:
        g.refresh()
    assert info.value.field.endswith(field) or field in info.value.field
    assert isinstance(info.value, ValueError)
    assert g.snapshot() == before
    assert hold.state == "held"


def test_malformed_session_blocks_a_cold_guard() -> None:
    g = guard(SequenceClient(_with("availableLimits.availableSpendAmount.value", "NaN")))
    with pytest.raises(MalformedSessionError):
        g.reserve("0.01")


def test_missing_available_amount_blocks_every_charge() -> None:
    body = _without("availableLimits")
    with stubbed(body, body) as (c, _):
        g = guard(c)
        assert not g.check("0.01").allowed
        with pytest.raises(BudgetExceededError):
            g.reserve("0.01")
        assert g.check("0").allowed


def test_missing_limits_keeps_guarding_on_available() -> None:
    with stubbed(_without("limits")) as (c, _):
        g = guard(c)
        snap = g.snapshot()
        assert snap.max_spend is None
        assert g.check("10.00").allowed
        assert not g.check("10.01").allowed


def test_stubber_accepts_the_shapes_the_tests_use() -> None:
    # The service model itself allows these bodies, so the guard must handle them.
    for body in (
        _body(),
        _without("availableLimits"),
        _without("limits"),
        _with("availableLimits.availableSpendAmount.value", "NaN"),
    ):
        with stubbed(body) as (c, _):
            c.get_payment_session(paymentManagerArn=ARN, paymentSessionId=SID)


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("AccessDeniedException", 403, SessionAccessDeniedError),
        ("ResourceNotFoundException", 404, SessionNotFoundError),
        ("ValidationException", 400, SessionRequestError),
        ("ThrottlingException", 429, SessionUnavailableError),
        ("InternalServerException", 500, SessionUnavailableError),
        ("SomethingNew", 400, SessionError),
    ],
)
def test_service_errors_map_by_code(code: str, status: int, kind: type[SessionError]) -> None:
    c = client()
    stub = Stubber(c)
    # The message deliberately names another error: mapping must go by code only.
    stub.add_client_error(
        "get_payment_session", code, "budget exceeded, access denied", http_status_code=status
    )
    with stub:
        g = guard(c)
        with pytest.raises(kind) as info:
            g.reserve("1")
    assert type(info.value) is kind
    assert info.value.__cause__ is not None
    assert info.value.session_id == SID


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), SessionConfigurationError),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), SessionUnavailableError),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:9"), SessionUnavailableError),
        (NoCredentialsError(), SessionConfigurationError),
        (NoRegionError(), SessionConfigurationError),
        (ProfileNotFound(profile="nope"), SessionConfigurationError),
        (ParamValidationError(report="bad"), SessionRequestError),
        (TimeoutError("timed out"), SessionUnavailableError),
    ],
)
def test_transport_failures_fail_closed(exc: Exception, kind: type[SessionError]) -> None:
    g = guard(SequenceClient(exc))
    with pytest.raises(kind) as info:
        g.check("1")
    assert type(info.value) is kind
    assert info.value.__cause__ is exc
    assert info.value.session_id == SID
    assert "http" not in info.value.model_message


def test_a_bug_in_a_custom_client_is_not_called_service_unavailable() -> None:
    g = guard(SequenceClient(TypeError("get_payment_session() got an unexpected keyword")))
    with pytest.raises(TypeError, match="unexpected keyword"):
        g.check("1")


def test_no_region_while_building_the_default_client_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/spendguard-test-config")
    g = SpendGuard(ARN, SID, **Clock().kwargs)
    with pytest.raises(SessionConfigurationError) as info:
        g.check("1")
    assert isinstance(info.value.__cause__, NoRegionError)


def test_client_side_validation_is_a_request_error() -> None:
    g = SpendGuard("arn:too-short", SID, client=client(), **Clock().kwargs)
    with pytest.raises(SessionRequestError):
        g.check("1")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payment_manager_arn": ""},
        {"payment_session_id": None},
        {"settlement": "later"},
        {"hold_lease": 0},
        {"hold_lease": float("inf")},
        {"user_id": 5},
        {"currency": "dollars"},
    ],
)
def test_bad_constructor_arguments_are_value_errors(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"payment_manager_arn": ARN, "payment_session_id": SID}
    args.update(kwargs)
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        SpendGuard(args.pop("payment_manager_arn"), args.pop("payment_session_id"), **args)


def test_no_client_is_built_at_construction() -> None:
    g = SpendGuard(ARN, SID)
    assert g._client is None
