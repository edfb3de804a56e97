"""The emulator's in-memory state: payment sessions and instruments, behind one lock.

Every public method of :class:`Store` runs under the same lock, so a ProcessPayment's
check-and-subtract is atomic under concurrent requests. Times are epoch seconds taken
from the emulator's (injectable) clock and passed in by the caller.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Context, Decimal, Inexact, Rounded
from typing import Protocol, TypeVar

from spendguard.emulator._errors import FieldError, access_denied, not_found, validation

#: Exact decimal arithmetic for balances: wide enough for 13 integer + 18 fraction digits.
CONTEXT = Context(prec=60, traps=[Inexact, Rounded])
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class Instant:
    """A point in time in a response; the server renders it as the model's timestamp."""

    epoch: float


def new_id(prefix: str) -> str:
    """``prefix`` + 15 random characters (``payment-session-AbC...``)."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(15))


def to_wire(amount: Decimal) -> str:
    """Plain decimal text, never exponent notation, at least two fraction digits."""
    text = format(amount, "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


@dataclass(slots=True)
class SessionRecord:
    """One payment session as the service stores it."""

    session_id: str
    arn: str
    user_id: str
    expiry_minutes: int
    created_at: float
    updated_at: float
    max_spend: Decimal | None = None
    available: Decimal | None = None
    limits_updated_at: float | None = None

    @property
    def ident(self) -> str:
        """The record's identifier."""
        return self.session_id

    @property
    def expires_at(self) -> float:
        """Epoch seconds at which the session stops accepting payments."""
        return self.created_at + 60 * self.expiry_minutes

    def summary(self) -> dict[str, object]:
        """The ``PaymentSessionSummary`` shape."""
        return {
            "paymentSessionId": self.session_id,
            "paymentManagerArn": self.arn,
            "userId": self.user_id,
            "expiryTimeInMinutes": self.expiry_minutes,
            "createdAt": Instant(self.created_at),
            "updatedAt": Instant(self.updated_at),
        }

    def to_wire(self) -> dict[str, object]:
        """The ``PaymentSession`` shape."""
        out = self.summary()
        if self.max_spend is not None and self.available is not None:
            out["limits"] = {"maxSpendAmount": _usd(self.max_spend)}
            out["availableLimits"] = {
                "availableSpendAmount": _usd(self.available),
                "updatedAt": Instant(self.limits_updated_at or self.created_at),
            }
        return out

    def debit(self, amount: Decimal, now: float) -> None:
        """Subtract ``amount`` from what is available (the caller checked it fits)."""
        if self.available is not None:
            self.available = CONTEXT.subtract(self.available, amount)
            self.limits_updated_at = now
        self.updated_at = now


@dataclass(slots=True)
class InstrumentRecord:
    """One payment instrument (an embedded crypto wallet).

    ``balances`` holds the wallet's token balance per chain in atomic units, as
    :meth:`~spendguard.emulator.PaymentsEmulator.fund` set it (nothing settles on chain).
    """

    instrument_id: str
    arn: str
    user_id: str
    connector_id: str
    instrument_type: str
    details: dict[str, object]
    created_at: float
    status: str = "ACTIVE"
    updated_at: float | None = None
    balances: dict[str, int] = field(default_factory=dict)

    @property
    def ident(self) -> str:
        """The record's identifier."""
        return self.instrument_id

    def summary(self) -> dict[str, object]:
        """The ``PaymentInstrumentSummary`` shape."""
        return {
            "paymentInstrumentId": self.instrument_id,
            "paymentManagerArn": self.arn,
            "paymentConnectorId": self.connector_id,
            "userId": self.user_id,
            "paymentInstrumentType": self.instrument_type,
            "status": self.status,
            "createdAt": Instant(self.created_at),
            "updatedAt": Instant(self.updated_at or self.created_at),
        }

    @property
    def network(self) -> str:
        """The wallet's network (``ETHEREUM`` or ``SOLANA``)."""
        wallet = self.details.get("embeddedCryptoWallet")
        return str(wallet.get("network", "")) if isinstance(wallet, dict) else ""

    def delete(self, now: float) -> None:
        """Soft delete: the record stays, but gets and lists no longer see it."""
        self.status = "DELETED"
        self.updated_at = now

    def to_wire(self) -> dict[str, object]:
        """The ``PaymentInstrument`` shape."""
        return {**self.summary(), "paymentInstrumentDetails": self.details}


class _Owned(Protocol):
    arn: str
    user_id: str
    created_at: float

    @property
    def ident(self) -> str: ...


_R = TypeVar("_R", bound=_Owned)


def _usd(amount: Decimal) -> dict[str, object]:
    return {"value": to_wire(amount), "currency": "USD"}


def fingerprint(params: dict[str, object]) -> str:
    """A digest of a request without its clientToken, to detect token reuse."""
    rest = {k: v for k, v in params.items() if k != "clientToken"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(slots=True)
class Store:
    """Sessions, instruments and idempotency records, guarded by ``lock``."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    instruments: dict[str, InstrumentRecord] = field(default_factory=dict)
    replies: dict[tuple[str, str, str], tuple[str, dict[str, object]]] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget everything."""
        with self.lock:
            self.sessions.clear()
            self.instruments.clear()
            self.replies.clear()

    def idempotent(
        self,
        key: tuple[str, str, str],
        params: dict[str, object],
        produce: Callable[[], dict[str, object]],
    ) -> dict[str, object]:
        """Replay the stored reply for ``key`` or store the one ``produce`` makes.

        Raises:
            ApiError: ValidationException (IdempotentParameterMismatchException) when the
                token was used before with different parameters.
        """
        digest = fingerprint(params)
        with self.lock:
            seen = self.replies.get(key)
            if seen is not None:
                if seen[0] != digest:
                    raise validation(
                        "clientToken was already used with different parameters",
                        reason="IdempotentParameterMismatchException",
                        fields=[FieldError("clientToken", "reused with different parameters")],
                    )
                return seen[1]
            reply = produce()
            self.replies[key] = (digest, reply)
            return reply

    def session(self, arn: str, user_id: str, session_id: str) -> SessionRecord:
        """The session, if ``user_id`` owns it under ``arn``.

        Raises:
            ApiError: ResourceNotFoundException or AccessDeniedException.
        """
        with self.lock:
            found = self.sessions.get(session_id)
        return _owned(found, arn, user_id, f"Payment session {session_id}")

    def instrument(self, arn: str, user_id: str, instrument_id: str) -> InstrumentRecord:
        """The instrument, if ``user_id`` owns it under ``arn`` and it is not deleted.

        Raises:
            ApiError: ResourceNotFoundException or AccessDeniedException.
        """
        with self.lock:
            found = self.instruments.get(instrument_id)
        if found is not None and found.status == "DELETED":
            found = None
        return _owned(found, arn, user_id, f"Payment instrument {instrument_id}")

    def add_session(self, record: SessionRecord) -> None:
        """Store a new session."""
        with self.lock:
            self.sessions[record.session_id] = record

    def add_instrument(self, record: InstrumentRecord) -> None:
        """Store a new instrument."""
        with self.lock:
            self.instruments[record.instrument_id] = record

    def delete_session(self, session_id: str) -> None:
        """Remove a session (hard delete)."""
        with self.lock:
            self.sessions.pop(session_id, None)

    def sessions_of(self, arn: str, user_id: str) -> list[SessionRecord]:
        """The user's sessions under ``arn``, oldest first."""
        with self.lock:
            return _mine(self.sessions.values(), arn, user_id)

    def instruments_of(self, arn: str, user_id: str) -> list[InstrumentRecord]:
        """The user's instruments under ``arn`` that are not deleted, oldest first."""
        with self.lock:
            live = [r for r in self.instruments.values() if r.status != "DELETED"]
            return _mine(live, arn, user_id)


def _owned(found: _R | None, arn: str, user_id: str, what: str) -> _R:
    if found is None or found.arn != arn:
        raise not_found(f"{what} was not found")
    if found.user_id != user_id:
        raise access_denied(f"{what} does not belong to user {user_id!r}")
    return found


def _mine(records: Iterable[_R], arn: str, user_id: str) -> list[_R]:
    mine = [r for r in records if r.arn == arn and r.user_id == user_id]
    return sorted(mine, key=_order)


def _order(record: _Owned) -> tuple[float, str]:
    return (record.created_at, record.ident)


def page(
    items: list[_R], next_token: object, max_results: object, *, limit: int = 100
) -> tuple[list[_R], str | None]:
    """One page of ``items`` after the opaque ``next_token``.

    Raises:
        ApiError: ValidationException for a bad token or a maxResults outside 1..limit.
    """
    size = limit if max_results is None else max_results
    if not isinstance(size, int) or not 1 <= size <= limit:
        raise validation(
            f"maxResults must be between 1 and {limit}",
            fields=[FieldError("maxResults", f"must be between 1 and {limit}")],
        )
    start = 0 if next_token is None else _resume(items, str(next_token))
    chunk = items[start : start + size]
    if start + size >= len(items):
        return chunk, None
    created, ident = _order(chunk[-1])
    return chunk, base64.urlsafe_b64encode(f"{created!r}|{ident}".encode()).decode()


def _resume(items: list[_R], token: str) -> int:
    """Index of the first item after the one the token names (deletions are harmless)."""
    try:
        created, _, ident = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        after = (float(created), ident)
    except (ValueError, UnicodeDecodeError) as exc:
        raise validation(
            "nextToken is not valid for this request",
            fields=[FieldError("nextToken", "not a token this service issued")],
        ) from exc
    return sum(1 for r in items if _order(r) <= after)
