"""One function per AgentCore payments operation, over already-validated parameters.

Each handler takes the :class:`Env` (state and settings) and a :class:`Call` (the
request's members, the caller's userId and the server time) and returns the response
body as the output shape's members (times as :class:`Instant`), or raises ``ApiError``.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from spendguard.emulator._errors import FieldError, access_denied, not_found, validation
from spendguard.emulator._pricing import USDC_DECIMALS, parse_amount, price
from spendguard.emulator._state import (
    Instant,
    InstrumentRecord,
    SessionRecord,
    Store,
    new_id,
    page,
    to_wire,
)

#: Service-managed instrument for AWS_BILLING_X402 payments (exists for every manager).
AWS_BILLING_INSTRUMENT = "aws.agentcorepayments.awsbilling.v1"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_SECONDS = re.compile(r"[0-9]{1,9}")
_MAX_TIMEOUT_SECONDS = 365 * 24 * 3600


@dataclass(slots=True)
class Env:
    """What handlers share: the state and the asset's decimals."""

    store: Store
    decimals: int = USDC_DECIMALS


@dataclass(frozen=True, slots=True)
class Call:
    """One validated request."""

    params: dict[str, object]
    user_id: str
    now: float

    @property
    def arn(self) -> str:
        """The paymentManagerArn member."""
        return str(self.params["paymentManagerArn"])

    def token(self, operation: str) -> tuple[str, str, str] | None:
        """Idempotency key for this caller's clientToken, if one was sent."""
        token = self.params.get("clientToken")
        return None if token is None else (operation, self.user_id, str(token))


Handler = Callable[[Env, Call], dict[str, object]]


def _once(
    env: Env, call: Call, operation: str, produce: Callable[[], dict[str, object]]
) -> dict[str, object]:
    """Run ``produce`` under the store lock, replaying it for a repeated clientToken."""
    key = call.token(operation)
    if key is not None:
        return env.store.idempotent(key, call.params, produce)
    with env.store.lock:  # without a token (raw HTTP callers) it must still be atomic
        return produce()


def create_payment_session(env: Env, call: Call) -> dict[str, object]:
    """CreatePaymentSession: a session with an optional spend limit; idempotent by token."""

    def produce() -> dict[str, object]:
        limit = _max_spend(call.params.get("limits"))
        record = SessionRecord(
            session_id=new_id("payment-session-"),
            arn=call.arn,
            user_id=call.user_id,
            expiry_minutes=int(str(call.params["expiryTimeInMinutes"])),
            created_at=call.now,
            updated_at=call.now,
            max_spend=limit,
            available=limit,
            limits_updated_at=None if limit is None else call.now,
        )
        env.store.add_session(record)
        return {"paymentSession": record.to_wire()}

    return _once(env, call, "CreatePaymentSession", produce)


def _max_spend(limits: object) -> Decimal | None:
    if not isinstance(limits, dict):
        return None
    amount = limits["maxSpendAmount"]
    return parse_amount(amount["value"], "limits.maxSpendAmount.value")


def get_payment_session(env: Env, call: Call) -> dict[str, object]:
    """GetPaymentSession: the caller's own session, with what is still available."""
    record = env.store.session(call.arn, call.user_id, str(call.params["paymentSessionId"]))
    with env.store.lock:
        return {"paymentSession": record.to_wire()}


def list_payment_sessions(env: Env, call: Call) -> dict[str, object]:
    """ListPaymentSessions: the caller's sessions under the manager, paginated."""
    items, token = page(
        env.store.sessions_of(call.arn, call.user_id),
        call.params.get("nextToken"),
        call.params.get("maxResults"),
    )
    out: dict[str, object] = {"paymentSessions": [r.summary() for r in items]}
    if token is not None:
        out["nextToken"] = token
    return out


def delete_payment_session(env: Env, call: Call) -> dict[str, object]:
    """DeletePaymentSession: hard delete by the owner."""
    session_id = str(call.params["paymentSessionId"])
    env.store.session(call.arn, call.user_id, session_id)
    env.store.delete_session(session_id)
    return {"status": "DELETED"}


def process_payment(env: Env, call: Call) -> dict[str, object]:
    """ProcessPayment: price the payment, check and debit the session atomically.

    Raises:
        ApiError: ValidationException for an expired session, a payment larger than what
            is available, or an input that does not fit the payment type.
    """
    session_id = str(call.params["paymentSessionId"])
    env.store.session(call.arn, call.user_id, session_id)

    def produce() -> dict[str, object]:
        record = env.store.session(call.arn, call.user_id, session_id)
        return _pay(env, call, record)

    return _once(env, call, "ProcessPayment", produce)


def _pay(env: Env, call: Call, record: SessionRecord) -> dict[str, object]:
    """Check, price and build the whole reply first; the debit comes last and cannot fail.

    So a request that fails debits nothing, and a debit always has a reply for the
    idempotency store to keep (a retry with the same clientToken replays it).
    """
    p = call.params
    if call.now >= record.expires_at:
        raise validation(
            f"Payment session {record.session_id} has expired",
            fields=[FieldError("paymentSessionId", "the payment session has expired")],
        )
    payment_type = str(p["paymentType"])
    instrument_id = str(p["paymentInstrumentId"])
    network = _instrument_network(env, call, instrument_id, payment_type)
    payment_input = p["paymentInput"]
    assert isinstance(payment_input, dict)
    amount = price(payment_type, payment_input, env.decimals)
    if record.available is not None and amount > record.available:
        raise validation(
            f"Insufficient budget: payment of {to_wire(amount)} USD exceeds the "
            f"{to_wire(record.available)} USD available in payment session {record.session_id}",
            fields=[FieldError("paymentInput", "amount exceeds the session's available budget")],
        )
    reply: dict[str, object] = {
        "processPaymentId": str(uuid.uuid4()),
        "paymentManagerArn": record.arn,
        "paymentSessionId": record.session_id,
        "paymentInstrumentId": instrument_id,
        "paymentType": payment_type,
        "status": "PROOF_GENERATED",
        "paymentOutput": _proof(payment_type, payment_input, network, call.now),
        "createdAt": Instant(call.now),
        "updatedAt": Instant(call.now),
    }
    record.debit(amount, call.now)
    return reply


def _instrument_network(env: Env, call: Call, instrument_id: str, payment_type: str) -> str:
    if instrument_id == AWS_BILLING_INSTRUMENT or payment_type == "AWS_BILLING_X402":
        if instrument_id != AWS_BILLING_INSTRUMENT or payment_type != "AWS_BILLING_X402":
            raise validation(
                f"{AWS_BILLING_INSTRUMENT} is the instrument for AWS_BILLING_X402 payments only",
                fields=[FieldError("paymentInstrumentId", "does not match paymentType")],
            )
        return "AWS_BILLING"
    instrument = env.store.instrument(call.arn, call.user_id, instrument_id)
    if instrument.status != "ACTIVE":
        raise access_denied(f"Payment instrument {instrument_id} is {instrument.status}")
    wallet = instrument.details.get("embeddedCryptoWallet")
    return str(wallet.get("network", "")) if isinstance(wallet, dict) else ""


def _proof(
    payment_type: str, payment_input: dict[str, object], network: str, now: float
) -> dict[str, object]:
    digest = hashlib.sha256(f"{payment_input}{now}{uuid.uuid4()}".encode()).hexdigest()
    if payment_type == "MPP":
        return {
            "mpp": {"version": "1", "selectedPaymentId": digest[:32], "paymentCredential": digest}
        }
    if payment_type == "AWS_BILLING_X402":
        return {"awsBillingX402": {"version": "2", "paymentToken": f"emulator.{digest}"}}
    body = payment_input["cryptoX402"]
    assert isinstance(body, dict)
    accept = body["payload"]
    assert isinstance(accept, dict)
    value = accept.get("maxAmountRequired", accept.get("amount"))
    authorization = {
        "from": _address(network, digest),
        "to": accept.get("payTo", ""),
        "value": str(value),
        "validAfter": str(int(now) - 60),
        "validBefore": str(int(now) + _timeout_seconds(accept)),
        "nonce": "0x" + digest,
    }
    payload = {"signature": "0x" + digest * 2 + "1b", "authorization": authorization}
    return {"cryptoX402": {"version": str(body["version"]), "payload": payload}}


def _timeout_seconds(accept: dict[str, object]) -> int:
    """The accept's ``maxTimeoutSeconds`` (default 300): a whole number up to a year."""
    value = accept.get("maxTimeoutSeconds", 300)
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if _SECONDS.fullmatch(text) is None or int(text) > _MAX_TIMEOUT_SECONDS:
        field = "paymentInput.cryptoX402.payload.maxTimeoutSeconds"
        message = (
            f"{str(value)[:40]!r} is not a whole number of seconds up to {_MAX_TIMEOUT_SECONDS}"
        )
        raise validation(f"{field}: {message}", fields=[FieldError(field, message)])
    return int(text)


def _address(network: str, seed: str) -> str:
    if network.upper() == "SOLANA":
        return "".join(_BASE58[int(seed[i : i + 2], 16) % 58] for i in range(0, 64, 2)) + "Emu1ator"
    return "0x" + seed[:40]


def create_payment_instrument(env: Env, call: Call) -> dict[str, object]:
    """CreatePaymentInstrument: an ACTIVE embedded wallet with an emulated address."""

    def produce() -> dict[str, object]:
        instrument_id = new_id("payment-instrument-")
        details = call.params["paymentInstrumentDetails"]
        assert isinstance(details, dict)
        wallet = dict(details["embeddedCryptoWallet"])
        seed = hashlib.sha256(instrument_id.encode()).hexdigest()
        wallet.setdefault("walletAddress", _address(str(wallet["network"]), seed))
        record = InstrumentRecord(
            instrument_id=instrument_id,
            arn=call.arn,
            user_id=call.user_id,
            connector_id=str(call.params["paymentConnectorId"]),
            instrument_type=str(call.params["paymentInstrumentType"]),
            details={"embeddedCryptoWallet": wallet},
            created_at=call.now,
        )
        env.store.add_instrument(record)
        return {"paymentInstrument": record.to_wire()}

    return _once(env, call, "CreatePaymentInstrument", produce)


def get_payment_instrument(env: Env, call: Call) -> dict[str, object]:
    """GetPaymentInstrument: the caller's own instrument."""
    instrument_id = str(call.params["paymentInstrumentId"])
    record = env.store.instrument(call.arn, call.user_id, instrument_id)
    connector = call.params.get("paymentConnectorId")
    if connector is not None and connector != record.connector_id:
        raise not_found(f"Payment instrument {instrument_id} was not found")
    return {"paymentInstrument": record.to_wire()}


def list_payment_instruments(env: Env, call: Call) -> dict[str, object]:
    """ListPaymentInstruments: the caller's instruments, optionally for one connector."""
    connector = call.params.get("paymentConnectorId")
    mine = [
        r
        for r in env.store.instruments_of(call.arn, call.user_id)
        if connector is None or r.connector_id == connector
    ]
    items, token = page(mine, call.params.get("nextToken"), call.params.get("maxResults"))
    out: dict[str, object] = {"paymentInstruments": [r.summary() for r in items]}
    if token is not None:
        out["nextToken"] = token
    return out


HANDLERS: dict[str, Handler] = {
    "CreatePaymentSession": create_payment_session,
    "GetPaymentSession": get_payment_session,
    "ListPaymentSessions": list_payment_sessions,
    "DeletePaymentSession": delete_payment_session,
    "ProcessPayment": process_payment,
    "CreatePaymentInstrument": create_payment_instrument,
    "GetPaymentInstrument": get_payment_instrument,
    "ListPaymentInstruments": list_payment_instruments,
}
