"""Helpers for the core tests: a controllable clock and Stubber-backed boto3 clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
from botocore.stub import Stubber

ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:payment-manager/pm-demo01-abcdefghij"
SID = "payment-session-abcdefghijklmno"
USER = "user-1"
T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


@dataclass
class Clock:
    """An injectable wall clock (epoch seconds) and monotonic timer that tests move by hand.

    ``advance`` moves both, as time passing does; ``step`` moves only the wall clock, as NTP
    correcting the host does. Pass both to a guard with ``**clock.kwargs``.
    """

    now: float = T0.timestamp()
    mono: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def timer(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds

    def step(self, seconds: float) -> None:
        self.now += seconds

    @property
    def kwargs(self) -> dict[str, Any]:
        return {"clock": self, "timer": self.timer}


@dataclass
class Session:
    """The server-side truth a stubbed response is built from."""

    max_spend: str = "10.00"
    available: str = "10.00"
    created_at: datetime = T0 - timedelta(minutes=10)
    updated_at: datetime = T0 - timedelta(minutes=5)
    expiry_minutes: int = 60
    extra: dict[str, Any] = field(default_factory=dict)

    def response(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "paymentSessionId": SID,
            "paymentManagerArn": ARN,
            "userId": USER,
            "expiryTimeInMinutes": self.expiry_minutes,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "limits": {"maxSpendAmount": {"value": self.max_spend, "currency": "USD"}},
            "availableLimits": {
                "availableSpendAmount": {"value": self.available, "currency": "USD"},
                "updatedAt": self.updated_at,
            },
        }
        body.update(self.extra)
        return {"paymentSession": body}


def client() -> Any:
    """A real bedrock-agentcore client with dummy credentials (never reaches a network)."""
    return boto3.client(
        "bedrock-agentcore",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@contextmanager
def stubbed(*responses: dict[str, Any]) -> Iterator[tuple[Any, Stubber]]:
    """A client whose next GetPaymentSession calls answer ``responses`` in order."""
    c = client()
    stub = Stubber(c)
    for response in responses:
        stub.add_response("get_payment_session", response)
    with stub:
        yield c, stub


class ScriptedClient:
    """Answers GetPaymentSession from a live :class:`Session`, counting calls.

    Used where many reads happen and the body must change between them; shapes that the
    service model allows are checked by Stubber-based tests separately.
    """

    def __init__(self, session: Session, date: datetime | None = None) -> None:
        self.session = session
        self.calls = 0
        self.date = date

    def get_payment_session(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        response = self.session.response()
        if self.date is not None:
            stamp = self.date.strftime("%a, %d %b %Y %H:%M:%S GMT")
            response["ResponseMetadata"] = {"HTTPHeaders": {"date": stamp}}
        return response


class SequenceClient:
    """Answers GetPaymentSession with the given bodies in order, raw and unvalidated.

    Stands in for a misbehaving endpoint (a proxy, a future API version) where Stubber, which
    validates against the service model, would refuse to produce the shape.
    """

    def __init__(self, *responses: Any) -> None:
        self.responses = list(responses)
        self.calls = 0

    def get_payment_session(self, **kwargs: Any) -> Any:
        self.calls += 1
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response
