"""What a ProcessPayment costs and the proof it returns, one function per payment type.

- ``CRYPTO_X402``: x402 v1 is priced by the accept's ``maxAmountRequired``, v2 by its
  ``amount``. ``exact`` signs an EIP-3009 authorization for that value; ``upto`` signs a
  Permit2 authorization whose ``permitted.amount`` is that ceiling, and the session is
  debited the ceiling (the seller may settle less, but the service cannot know how much).
- ``MPP``: priced by the ``amount`` of the challenge's ``request``; the credential echoes
  the challenge and ``selectedPaymentId`` is its ``id``.
- ``AWS_BILLING_X402``: priced like x402 (the seller's quote needs ``extra.quoteToken``);
  the ``paymentToken`` is a JWT, bound to ``options.dpopJwk`` when one is given.

Every amount counts atomic units of the asset (USDC: 6 decimals). Everything is checked
and the whole output built here, before the session is debited.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal

from spendguard.emulator._mpp import read_challenge
from spendguard.emulator._pricing import invalid, parse_atomic
from spendguard.emulator._tokens import ISSUER, b64url, jwk_thumbprint, jwt

#: The x402 Permit2 proxy (the same CREATE2 address on every EVM chain): an upto spender.
PERMIT2_PROXY = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
_MEMBER = {"CRYPTO_X402": "cryptoX402", "AWS_BILLING_X402": "awsBillingX402", "MPP": "mpp"}
_SCHEMES = frozenset({"exact", "upto"})
_SECONDS = re.compile(r"[0-9]{1,9}")
_MAX_TIMEOUT_SECONDS = 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Wallet:
    """The paying instrument: its network and address (AWS Billing has neither)."""

    network: str
    address: str


@dataclass(frozen=True, slots=True)
class Priced:
    """What the session is debited and the ``paymentOutput`` that proves the payment."""

    amount: Decimal
    output: dict[str, object]


def prepare(
    payment_type: str, payment_input: dict[str, object], wallet: Wallet, decimals: int, now: float
) -> Priced:
    """Price ``payment_input`` and build its proof.

    Raises:
        ApiError: ValidationException when the input does not fit the payment type, has no
            price, or cannot be paid from ``wallet``.
    """
    member = _MEMBER[payment_type]
    body = payment_input.get(member)
    if not isinstance(body, dict):
        raise invalid("paymentInput", f"paymentType {payment_type} requires paymentInput.{member}")
    seed = hashlib.sha256(f"{body}{now}{uuid.uuid4()}".encode()).hexdigest()
    if payment_type == "MPP":
        return _mpp(body, wallet, decimals, now, seed)
    if payment_type == "AWS_BILLING_X402":
        return _aws_billing(body, decimals, now)
    return _crypto_x402(body, wallet, decimals, now, seed)


def _accept(body: dict[str, object], member: str) -> dict[str, object]:
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise invalid(f"paymentInput.{member}.payload", "must be the selected x402 accept object")
    return payload


def _x402_price(body: dict[str, object], member: str, decimals: int) -> tuple[Decimal, str]:
    """The accept's price and its atomic units as signed (v1 ``maxAmountRequired``, else
    ``amount``)."""
    accept = _accept(body, member)
    key = "maxAmountRequired" if str(body.get("version")) == "1" else "amount"
    if key not in accept:
        raise invalid(f"paymentInput.{member}.payload.{key}", "missing: the accept has no price")
    units = accept[key]
    return parse_atomic(units, decimals, f"paymentInput.{member}.payload.{key}"), str(units)


def _crypto_x402(
    body: dict[str, object], wallet: Wallet, decimals: int, now: float, seed: str
) -> Priced:
    accept = _accept(body, "cryptoX402")
    amount, value = _x402_price(body, "cryptoX402", decimals)
    scheme = str(accept.get("scheme", "exact")).lower()
    field = "paymentInput.cryptoX402.payload.scheme"
    if scheme not in _SCHEMES:
        raise invalid(field, f"{scheme[:40]!r} is not exact or upto")
    if scheme == "upto" and wallet.network != "ETHEREUM":
        raise invalid(field, "upto (Permit2) can only be paid from an ETHEREUM wallet")
    if "permit2AllowanceLimit" in body and scheme != "upto":
        field = "paymentInput.cryptoX402.permit2AllowanceLimit"
        raise invalid(field, "valid only for the upto scheme")
    window = (str(int(now) - 60), str(int(now) + _timeout_seconds(accept, "cryptoX402")))
    sign = _permit2 if scheme == "upto" else _eip3009
    payload = {"signature": "0x" + seed * 2 + "1b", **sign(accept, wallet, value, window, seed)}
    return Priced(amount, {"cryptoX402": {"version": str(body["version"]), "payload": payload}})


def _eip3009(
    accept: dict[str, object], wallet: Wallet, value: str, window: tuple[str, str], seed: str
) -> dict[str, object]:
    return {
        "authorization": {
            "from": wallet.address,
            "to": accept.get("payTo", ""),
            "value": value,
            "validAfter": window[0],
            "validBefore": window[1],
            "nonce": "0x" + seed,
        }
    }


def _permit2(
    accept: dict[str, object], wallet: Wallet, value: str, window: tuple[str, str], seed: str
) -> dict[str, object]:
    return {
        "permit2Authorization": {
            "permitted": {"token": accept.get("asset", ""), "amount": value},
            "from": wallet.address,
            "spender": PERMIT2_PROXY,
            "nonce": str(int(seed[:30], 16)),
            "deadline": window[1],
            "witness": {"to": accept.get("payTo", ""), "validAfter": window[0], "extra": {}},
        }
    }


def _timeout_seconds(accept: dict[str, object], member: str) -> int:
    """The accept's ``maxTimeoutSeconds`` (default 300): a whole number up to a year."""
    value = accept.get("maxTimeoutSeconds", 300)
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if _SECONDS.fullmatch(text) is None or int(text) > _MAX_TIMEOUT_SECONDS:
        field = f"paymentInput.{member}.payload.maxTimeoutSeconds"
        shown = str(value)[:40]
        raise invalid(field, f"{shown!r} is not a whole number of seconds up to a year")
    return int(text)


def _mpp(body: dict[str, object], wallet: Wallet, decimals: int, now: float, seed: str) -> Priced:
    challenge = read_challenge(body.get("wwwAuthenticateHeaders"), wallet.network, now)
    amount = challenge.price(decimals)
    credential = {
        "challenge": challenge.params,
        "source": wallet.address,
        "payload": {
            "type": "authorization",
            "signature": "0x" + seed * 2 + "1b",
            "from": wallet.address,
            "to": challenge.request.get("recipient", ""),
            "value": str(challenge.request["amount"]),
            "nonce": "0x" + seed,
        },
    }
    token = b64url(json.dumps(credential, separators=(",", ":")).encode())
    output = {
        "version": str(body["version"]),
        "selectedPaymentId": challenge.id,
        "paymentCredential": f"Payment {token}",
    }
    return Priced(amount, {"mpp": output})


def _aws_billing(body: dict[str, object], decimals: int, now: float) -> Priced:
    accept = _accept(body, "awsBillingX402")
    extra = accept.get("extra")
    quote = extra.get("quoteToken") if isinstance(extra, dict) else None
    if not isinstance(quote, str) or not quote:
        raise invalid("paymentInput.awsBillingX402.payload.extra.quoteToken", "quote token missing")
    amount, value = _x402_price(body, "awsBillingX402", decimals)
    issued = int(now)
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": accept.get("payTo", accept.get("resource", "")),
        "jti": str(uuid.uuid4()),
        "iat": issued,
        "exp": issued + _timeout_seconds(accept, "awsBillingX402"),
        "quoteTokenHash": b64url(hashlib.sha256(quote.encode()).digest()),
        "amount": value,
    }
    options = body.get("options")
    key = options.get("dpopJwk") if isinstance(options, dict) else None
    if isinstance(key, dict):
        claims["cnf"] = {"jkt": jwk_thumbprint(key)}
    output = {"version": str(body["version"]), "paymentToken": jwt(claims)}
    return Priced(amount, {"awsBillingX402": output})
