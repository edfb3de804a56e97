"""Reading what a 402 payment challenge asks for, in every shape the AgentCore SDK pays.

The SDK hands ``pre_sign_policy`` a dict ``{"statusCode", "headers", "body"}``. The options it
may pay live in four shapes:

* x402 v1, body dict: ``body["accepts"][i]["maxAmountRequired"]``;
* x402 v1, body JSON string: the same inside ``json.loads(body)``;
* x402 v2: base64 JSON in the ``Payment-Required`` header (any case), ``accepts[i]["amount"]``;
* MPP: ``WWW-Authenticate: Payment`` challenges whose base64url ``request`` carries ``amount``
  and ``currency``.

x402 amounts are atomic units of ``accepts[i]["asset"]``, MPP amounts base units of
``currency``. The allowlist of assets is the only source of an asset's decimals: x402 carries
none, and an MPP request's optional ``decimals`` is a claim by the payee, not a fact about the
token. So an MPP challenge whose ``decimals`` differ from the allowlist's (or are not an int)
is blocked, never priced either way: the AgentCore service may honour the claim (the
emulator does), so pricing by the allowlist could hold less than is charged, and pricing by
the claim would let a payee set its own price scale. A currency not on the allowlist is
blocked too.

Anything that cannot be read (malformed, nested past the recursion limit, a number too long
or too large to be a price, a value of the wrong type) raises :class:`ChallengeError` saying
what was wrong: for a request made of JSON values, no other exception escapes
:func:`payment_options`.

The header and body are read the way the SDK's own ``PaymentManager`` reads them, and MPP
challenges through the SDK's own parser, so the policy prices the options the SDK can pay.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from bedrock_agentcore.payments.constants import MPP_SUPPORTED_INTENT
from bedrock_agentcore.payments.mpp import decode_challenge_request, extract_challenges

from spendguard import InvalidAmountError, InvalidArgumentError, Money, PricingError

__all__ = ["USDC_ASSETS", "ChallengeError", "PaymentOption", "normalize_assets", "payment_options"]

#: USDC (6 decimals, one unit is one US dollar) on the networks the SDK prefers. Keys are
#: token contract addresses (EVM, compared case-insensitively) and SPL mints (Solana).
USDC_ASSETS: Mapping[str, int] = MappingProxyType(
    {
        "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913": 6,  # Base
        "0x036cbd53842c5426634e7929541ec2318f3dcf7e": 6,  # Base Sepolia
        "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48": 6,  # Ethereum
        "0x1c7d4b196cb0c7b01d743fbc6116a902379c7238": 6,  # Ethereum Sepolia
        "0xaf88d065e77c8cc2239327c5edb3a432268e5831": 6,  # Arbitrum One
        "0x0b2c639c533813f4aa9d7837caf62653d097ff85": 6,  # Optimism
        "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v": 6,  # Solana
        "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU": 6,  # Solana devnet
    }
)

_POLICY = "pre_sign_policy"
#: Largest price accepted, in US dollars (what ``Money`` accepts).
_MAX_DOLLARS = 10**12


class ChallengeError(PricingError):
    """A 402 challenge could not be priced (unknown asset, bad amount, unreadable shape)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, tool_name=_POLICY)


class _NotJson(Exception):
    """Text that is not JSON at all (as opposed to JSON too deep or too long to read)."""


@dataclass(frozen=True, slots=True)
class PaymentOption:
    """One way the 402 response offers to be paid.

    Attributes:
        protocol: ``"x402"`` or ``"mpp"``.
        asset: The asset (x402 ``asset``, MPP ``currency``) as advertised.
        price: What the option costs, in US dollars.
    """

    protocol: Literal["x402", "mpp"]
    asset: str
    price: Money


def normalize_assets(assets: Mapping[str, int]) -> Mapping[str, int]:
    """Key an asset allowlist the way challenges are looked up (EVM addresses lowercased).

    Args:
        assets: Asset identifier -> decimals, every listed asset worth one US dollar per unit.

    Returns:
        A read-only copy with normalized keys.

    Raises:
        InvalidArgumentError: ``assets`` is not a mapping, or an entry's decimals are not an
            int from 0 to 18.
    """
    if not isinstance(assets, Mapping):
        raise InvalidArgumentError(
            f"assets must be a mapping of asset to decimals, got {assets!r}", argument="assets"
        )
    normalized: dict[str, int] = {}
    for asset, decimals in assets.items():
        if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 18:
            raise InvalidArgumentError(
                f"decimals of asset {asset!r} must be an int from 0 to 18", argument="assets"
            )
        normalized[_asset_key(asset)] = decimals
    return MappingProxyType(normalized)


def payment_options(request: object, assets: Mapping[str, int]) -> list[PaymentOption]:
    """Every option the SDK might pay for this 402 request, priced.

    Args:
        request: What the SDK passes to ``pre_sign_policy``.
        assets: A :func:`normalize_assets` allowlist.

    Returns:
        At least one option.

    Raises:
        ChallengeError: No payable option, or one option cannot be priced (a policy must not
            guess, since the SDK picks the option to pay after the policy said yes).
    """
    if not isinstance(request, Mapping):
        raise ChallengeError("the payment request is not a mapping")
    try:
        options = _mpp_options(dict(request), assets) + _x402_options(request, assets)
    except ChallengeError:
        raise
    except (RecursionError, ValueError, TypeError, ArithmeticError) as exc:  # fail closed
        raise ChallengeError(f"the challenge could not be read ({type(exc).__name__})") from exc
    if not options:
        raise ChallengeError("the 402 response offers no payment option spendguard can read")
    return options


def _mpp_options(request: dict[str, object], assets: Mapping[str, int]) -> list[PaymentOption]:
    options: list[PaymentOption] = []
    for details in _charge_requests(request):
        currency = details.get("currency")
        if not isinstance(currency, str):
            raise ChallengeError("an MPP challenge request has no currency")
        if "decimals" in details:
            _check_claimed_decimals(details["decimals"], currency, assets)
        options.append(
            PaymentOption("mpp", currency, _price(details.get("amount"), currency, assets))
        )
    return options


def _charge_requests(request: dict[str, object]) -> list[dict[str, object]]:
    """The decoded requests of the MPP challenges the SDK would pay (intent "charge")."""
    try:  # the SDK's parser catches bad JSON but not JSON nested past the recursion limit
        return [
            decode_challenge_request(challenge)
            for challenge in extract_challenges(request)
            if str(challenge.get("intent", "")).strip().lower() == MPP_SUPPORTED_INTENT
        ]
    except RecursionError as exc:
        raise ChallengeError("an MPP challenge request is JSON nested too deeply to read") from exc


def _check_claimed_decimals(claimed: object, currency: str, assets: Mapping[str, int]) -> None:
    decimals = _decimals(currency, assets)
    if type(claimed) is not int or claimed != decimals:
        raise ChallengeError(
            f"the MPP challenge says {currency[:80]!r} has decimals {_show(claimed)} but the "
            f"allowlist says {decimals}, so its price is ambiguous"
        )


def _x402_options(
    request: Mapping[object, object], assets: Mapping[str, int]
) -> list[PaymentOption]:
    payload = _x402_payload(request)
    if payload is None:
        return []
    accepts = payload.get("accepts")
    if not isinstance(accepts, list) or not accepts:
        raise ChallengeError("the x402 challenge has no list of accepted payments")
    options: list[PaymentOption] = []
    for accept in accepts:
        if not isinstance(accept, Mapping):
            raise ChallengeError("an x402 accepted payment is not an object")
        asset = accept.get("asset")
        if not isinstance(asset, str):
            raise ChallengeError("an x402 accepted payment names no asset")
        # v1 says maxAmountRequired, v2 says amount; price whichever are there, the higher wins.
        amounts = [accept[key] for key in ("maxAmountRequired", "amount") if key in accept]
        if not amounts:
            raise ChallengeError("an x402 accepted payment has no amount")
        price = max(_price(units, asset, assets) for units in amounts)
        options.append(PaymentOption("x402", asset, price))
    return options


def _x402_payload(request: Mapping[object, object]) -> Mapping[str, object] | None:
    headers = request.get("headers")
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == "payment-required":
                return _decode_v2_header(value)  # the SDK reads the first such header only
    body = request.get("body")
    if isinstance(body, str | bytes):
        try:
            body = _load_json(body, "the 402 body")
        except _NotJson:
            return None  # not JSON: the SDK cannot read an x402 challenge from it either
    if not isinstance(body, Mapping) or not ("x402Version" in body or "accepts" in body):
        return None  # no x402 challenge (an MPP 402 carries its own body)
    return body


def _decode_v2_header(value: object) -> Mapping[str, object]:
    if not isinstance(value, str | bytes) or not value:
        raise ChallengeError("the Payment-Required header is empty or not a string")
    where = "the Payment-Required header"
    try:
        payload = _load_json(base64.b64decode(value), where)  # as lenient as the SDK, for parity
    except (_NotJson, ValueError) as exc:  # ValueError: binascii.Error, non-ASCII text
        raise ChallengeError(f"{where} is not base64 JSON") from exc
    if not isinstance(payload, Mapping):
        raise ChallengeError("the Payment-Required header is not a JSON object")
    return payload


def _decimals(asset: str, assets: Mapping[str, int]) -> int:
    decimals = assets.get(_asset_key(asset))
    if decimals is None:
        raise ChallengeError(f"asset {asset[:80]!r} is not on the allowlist, its value is unknown")
    return decimals


def _load_json(text: str | bytes, where: str) -> object:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _NotJson from exc
    except RecursionError as exc:
        raise ChallengeError(f"{where} is JSON nested too deeply to read") from exc
    except ValueError as exc:  # what is left: an integer over Python's digit limit
        raise ChallengeError(f"{where} has a number too long to read") from exc


def _price(units: object, asset: str, assets: Mapping[str, int]) -> Money:
    decimals = _decimals(asset, assets)
    limit = _MAX_DOLLARS * 10**decimals
    if isinstance(units, bool) or not isinstance(units, int | str) or _negative(units):
        raise ChallengeError(f"the amount ({_show(units)}) is not a count of atomic units")
    if isinstance(units, str) and units.isascii() and units.isdigit():
        too_large = len(units.lstrip("0")) > len(str(limit)) or int(units) >= limit
    else:
        too_large = isinstance(units, int) and units >= limit
    if too_large:
        raise ChallengeError(f"the amount ({_show(units)}) is too large to be a price")
    try:
        return Money.from_atomic(units, decimals)
    except InvalidAmountError as exc:
        raise ChallengeError(f"the amount ({_show(units)}) is not a count of atomic units") from exc


def _negative(units: int | str) -> bool:
    return isinstance(units, int) and units < 0


def _show(value: object) -> str:
    """A challenge value for a message: short, never a deep repr or a huge int's digits."""
    if isinstance(value, str):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return f"an integer of about {value.bit_length() * 3 // 10} digits"
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    return f"a {type(value).__name__}"


def _asset_key(asset: str) -> str:
    return asset.lower() if asset[:2] in ("0x", "0X") else asset
