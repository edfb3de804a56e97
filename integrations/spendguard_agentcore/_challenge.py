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
from urllib.parse import urlsplit

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
    """A 402 challenge was refused before signing: it could not be priced (bad amount,
    unreadable shape), an option is not on an allowlist, or its x402 v1 body and v2 header
    disagree.

    Attributes:
        rule: ``"pricing"``, ``"allowlist_asset"``, ``"allowlist_network"``,
            ``"allowlist_pay_to"``, ``"allowlist_origin"`` or ``"challenge_mismatch"``.
    """

    def __init__(self, message: str, *, rule: str = "pricing", model_reason: str = "") -> None:
        super().__init__(message, tool_name=_POLICY)
        self.rule = rule
        self._model_reason = model_reason

    @property
    def model_message(self) -> str:
        """Why the payment is blocked; an allowlist or mismatch refusal names no value (the
        challenge's addresses and URLs are the payee's words, never shown to the model)."""
        if not self._model_reason:
            return super().model_message
        return f"Payment blocked: {self._model_reason}. Do not retry this call."


class _NotJson(Exception):
    """Text that is not JSON at all (as opposed to JSON too deep or too long to read)."""


@dataclass(frozen=True, slots=True)
class PaymentOption:
    """One way the 402 response offers to be paid.

    Attributes:
        protocol: ``"x402"`` or ``"mpp"``.
        asset: The asset (x402 ``asset``, MPP ``currency``) as advertised.
        price: What the option costs, in US dollars.
        network: The network as advertised (x402 ``network``, e.g. ``"base"`` in v1 and
            ``"eip155:8453"`` in v2; for MPP ``"eip155:<chainId>"`` of an ``evm`` method),
            None when the challenge names none.
        pay_to: The recipient (x402 ``payTo``, MPP ``recipient``), None when absent.
        origin: Where the challenge says the resource is: the origin of the x402
            ``resource`` URL (``"https://host[:port]"``), or the MPP ``realm``; None when absent.
    """

    protocol: Literal["x402", "mpp"]
    asset: str
    price: Money
    network: str | None = None
    pay_to: str | None = None
    origin: str | None = None


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
    for challenge, details in _charge_requests(request):
        currency = details.get("currency")
        if not isinstance(currency, str):
            raise ChallengeError("an MPP challenge request has no currency")
        if "decimals" in details:
            _check_claimed_decimals(details["decimals"], currency, assets)
        price = _price(details.get("amount"), currency, assets)
        network = _mpp_network(challenge.get("method"), details.get("methodDetails"))
        pay_to, realm = _text(details.get("recipient")), _text(challenge.get("realm"))
        options.append(PaymentOption("mpp", currency, price, network, pay_to, realm))
    return options


def _charge_requests(
    request: dict[str, object],
) -> list[tuple[Mapping[str, object], dict[str, object]]]:
    """The MPP challenges the SDK would pay (intent "charge"), with their decoded requests."""
    try:  # the SDK's parser catches bad JSON but not JSON nested past the recursion limit
        return [
            (challenge, decode_challenge_request(challenge))
            for challenge in extract_challenges(request)
            if str(challenge.get("intent", "")).strip().lower() == MPP_SUPPORTED_INTENT
        ]
    except RecursionError as exc:
        raise ChallengeError("an MPP challenge request is JSON nested too deeply to read") from exc


def _mpp_network(method: object, details: object) -> str | None:
    chain = details.get("chainId") if isinstance(details, Mapping) else None
    if method == "evm" and type(chain) is int:
        return f"eip155:{chain}"
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _check_claimed_decimals(claimed: object, currency: str, assets: Mapping[str, int]) -> None:
    decimals = _decimals(currency, assets)
    if type(claimed) is not int or claimed != decimals:
        raise ChallengeError(
            f"the MPP challenge says {currency[:80]!r} has decimals {_show(claimed)} but the "
            f"allowlist says {decimals}, so its price is ambiguous",
            model_reason="the payment request states decimals the allowlist disagrees with",
        )


def _x402_options(
    request: Mapping[object, object], assets: Mapping[str, int]
) -> list[PaymentOption]:
    header = _v2_header(request)
    body = _x402_body(request)
    if header is None and body is None:
        return []
    # The SDK pays from the header when there is one, else from the body.
    options = _priced_accepts(header if header is not None else body, assets)
    if header is not None and body is not None:
        _check_agreement(body, header)
    return options


def _check_agreement(body: Mapping[str, object], header: Mapping[str, object]) -> None:
    """Refuse a challenge whose v1 body and v2 header offer the same option differently.

    An option is the same when scheme and asset are (networks are named differently by v1
    and v2); its amount and recipient must then agree.
    """
    in_body, in_header = _terms(body), _terms(header)
    for option in in_body.keys() & in_header.keys():
        if in_body[option] != in_header[option]:
            raise ChallengeError(
                "the x402 v1 body and the v2 Payment-Required header disagree about the "
                "amount or recipient of the same payment option",
                rule="challenge_mismatch",
                model_reason="the payment request contradicts itself",
            )


def _terms(payload: Mapping[str, object]) -> dict[tuple[str, str], set[tuple[object, object]]]:
    """(scheme, asset) -> every (atomic amount, recipient) offered for it."""
    accepts = payload.get("accepts")
    terms: dict[tuple[str, str], set[tuple[object, object]]] = {}
    for accept in accepts if isinstance(accepts, list) else []:
        if not isinstance(accept, Mapping) or not isinstance(accept.get("asset"), str):
            continue
        key = (str(accept.get("scheme", "")).lower(), address_key(str(accept["asset"])))
        amounts = [_units(accept[k]) for k in ("maxAmountRequired", "amount") if k in accept]
        pay_to = accept.get("payTo")
        recipient = address_key(pay_to) if isinstance(pay_to, str) else _show(pay_to)
        terms.setdefault(key, set()).add((_highest(amounts), recipient))
    return terms


def _highest(amounts: list[object]) -> object:
    numbers = [amount for amount in amounts if type(amount) is int]
    if numbers and len(numbers) == len(amounts):
        return max(numbers)
    return tuple(sorted(map(str, amounts)))


def _units(value: object) -> object:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 100:
        return int(value)
    if type(value) is int:
        return value
    return _show(value)


def origin(url: str) -> str | None:
    """The origin ``scheme://host[:port]`` of a URL (lowercase, default port dropped), or
    None when ``url`` is not an absolute http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme.lower() == "https" else 80
    suffix = "" if port in (None, default) else f":{port}"
    return f"{parts.scheme.lower()}://{parts.hostname.lower()}{suffix}"


def _priced_accepts(
    payload: Mapping[str, object] | None, assets: Mapping[str, int]
) -> list[PaymentOption]:
    assert payload is not None
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
        network, pay_to = _text(accept.get("network")), _text(accept.get("payTo"))
        origin = _origin_of(accept.get("resource", payload.get("resource")))
        options.append(PaymentOption("x402", asset, price, network, pay_to, origin))
    return options


def _v2_header(request: Mapping[object, object]) -> Mapping[str, object] | None:
    headers = request.get("headers")
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == "payment-required":
                return _decode_v2_header(value)  # the SDK reads the first such header only
    return None


def _x402_body(request: Mapping[object, object]) -> Mapping[str, object] | None:
    body = request.get("body")
    if isinstance(body, str | bytes):
        try:
            body = _load_json(body, "the 402 body")
        except _NotJson:
            return None  # not JSON: the SDK cannot read an x402 challenge from it either
    if not isinstance(body, Mapping) or not ("x402Version" in body or "accepts" in body):
        return None  # no x402 challenge (an MPP 402 carries its own body)
    return body


def _origin_of(resource: object) -> str | None:
    if isinstance(resource, Mapping):  # x402 v2: {"url": ...}
        resource = resource.get("url")
    return origin(resource) if isinstance(resource, str) else None


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
        raise ChallengeError(
            f"asset {asset[:80]!r} is not on the allowlist, its value is unknown",
            rule="allowlist_asset",
            model_reason="the payment request asks for an asset that is not allowed",
        )
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
    return address_key(asset)


def address_key(address: str) -> str:
    """An address as compared: EVM ``0x`` addresses case-insensitively, others exactly."""
    return address.lower() if address[:2] in ("0x", "0X") else address
