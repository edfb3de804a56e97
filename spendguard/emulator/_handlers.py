"""One function per AgentCore payments operation, over already-validated parameters.

Each handler takes the :class:`Env` (state and settings) and a :class:`Call` (the
request's members, the caller's userId and the server time) and returns the response
body as the output shape's members (times as :class:`Instant`), or raises ``ApiError``.
Sessions and payments are here; instruments in ``_instruments``; what a payment costs and
proves in ``_payments``.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from spendguard.emulator import _instruments as instruments
from spendguard.emulator._call import Call, Env, Handler, once
from spendguard.emulator._errors import FieldError, access_denied, validation
from spendguard.emulator._payments import Wallet, prepare
from spendguard.emulator._pricing import parse_amount
from spendguard.emulator._state import Instant, SessionRecord, new_id, page, to_wire
from spendguard.emulator._tokens import resource_payment_token

__all__ = ["AWS_BILLING_INSTRUMENT", "HANDLERS", "Call", "Env", "Handler"]

#: Service-managed instrument for AWS_BILLING_X402 payments (exists for every manager).
AWS_BILLING_INSTRUMENT = "aws.agentcorepayments.awsbilling.v1"


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

    return once(env, call, "CreatePaymentSession", produce)


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

    return once(env, call, "ProcessPayment", produce)


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
    wallet = _wallet(env, call, instrument_id, payment_type)
    payment_input = p["paymentInput"]
    assert isinstance(payment_input, dict)
    priced = prepare(payment_type, payment_input, wallet, env.decimals, call.now)
    if record.available is not None and priced.amount > record.available:
        raise validation(
            f"Insufficient budget: payment of {to_wire(priced.amount)} USD exceeds the "
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
        "paymentOutput": priced.output,
        "createdAt": Instant(call.now),
        "updatedAt": Instant(call.now),
    }
    record.debit(priced.amount, call.now)
    return reply


def _wallet(env: Env, call: Call, instrument_id: str, payment_type: str) -> Wallet:
    if instrument_id == AWS_BILLING_INSTRUMENT or payment_type == "AWS_BILLING_X402":
        if instrument_id != AWS_BILLING_INSTRUMENT or payment_type != "AWS_BILLING_X402":
            raise validation(
                f"{AWS_BILLING_INSTRUMENT} is the instrument for AWS_BILLING_X402 payments only",
                fields=[FieldError("paymentInstrumentId", "does not match paymentType")],
            )
        return Wallet("AWS_BILLING", "")
    instrument = env.store.instrument(call.arn, call.user_id, instrument_id)
    if instrument.status != "ACTIVE":
        raise access_denied(f"Payment instrument {instrument_id} is {instrument.status}")
    wallet = instrument.details.get("embeddedCryptoWallet")
    found = wallet.get("walletAddress", "") if isinstance(wallet, dict) else ""
    return Wallet(instrument.network, str(found))


def get_resource_payment_token(env: Env, call: Call) -> dict[str, object]:
    """GetResourcePaymentToken: a payment provider's auth tokens, for any workload token."""
    return {"paymentTokenResponse": resource_payment_token(call.params, call.now)}


HANDLERS: dict[str, Handler] = {
    "CreatePaymentSession": create_payment_session,
    "GetPaymentSession": get_payment_session,
    "ListPaymentSessions": list_payment_sessions,
    "DeletePaymentSession": delete_payment_session,
    "ProcessPayment": process_payment,
    "CreatePaymentInstrument": instruments.create_payment_instrument,
    "GetPaymentInstrument": instruments.get_payment_instrument,
    "ListPaymentInstruments": instruments.list_payment_instruments,
    "GetPaymentInstrumentBalance": instruments.get_payment_instrument_balance,
    "DeletePaymentInstrument": instruments.delete_payment_instrument,
    "GetResourcePaymentToken": get_resource_payment_token,
}
