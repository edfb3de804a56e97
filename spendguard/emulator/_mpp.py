"""MPP challenges: the one ``WWW-Authenticate: Payment`` header a ProcessPayment carries.

The header's auth-params (RFC 9110 section 11.2) are read exactly as sent, so the
credential can echo the challenge and ``selectedPaymentId`` is the challenge's ``id``.
The ``request`` param is base64url JSON whose ``amount`` counts atomic units of the
asset (``decimals`` in the request overrides the asset's).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from spendguard.emulator._pricing import invalid, parse_atomic
from spendguard.emulator._validation import load_json

FIELD = "paymentInput.mpp.wwwAuthenticateHeaders"
#: Which instrument network can pay each MPP method (the SDK's own mapping).
METHOD_NETWORK = {"evm": "ETHEREUM", "tempo": "ETHEREUM", "solana": "SOLANA"}
_REQUIRED = ("id", "realm", "method", "intent", "request")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SCHEME = re.compile(r"\s*Payment\s+", re.IGNORECASE)
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]+)\s*(?:,|$)')
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One parsed ``Payment`` challenge.

    Attributes:
        params: Every auth-param as sent (unquoted), ``id`` and ``request`` included.
        request: The decoded ``request`` object.
    """

    params: dict[str, str]
    request: dict[str, object]

    @property
    def id(self) -> str:
        """The challenge id the service echoes as ``selectedPaymentId``."""
        return self.params["id"]

    def price(self, decimals: int) -> Decimal:
        """The request's ``amount`` in units of the asset.

        Raises:
            ApiError: ValidationException for a missing or malformed amount or decimals.
        """
        if "amount" not in self.request:
            raise invalid(FIELD, "challenge request has no amount")
        places = self.request.get("decimals", decimals)
        if not isinstance(places, int) or isinstance(places, bool) or not 0 <= places <= 18:
            raise invalid(FIELD, "challenge request decimals must be an integer from 0 to 18")
        return parse_atomic(self.request["amount"], places, f"{FIELD}[0].request.amount")


def read_challenge(headers: object, network: str, now: float) -> Challenge:
    """The single Payment challenge of ``wwwAuthenticateHeaders``, checked for payment.

    Args:
        headers: The ``wwwAuthenticateHeaders`` member (the model allows exactly one).
        network: The paying instrument's network (``ETHEREUM`` or ``SOLANA``).
        now: The server time, for the challenge's ``expires``.

    Raises:
        ApiError: ValidationException when the header is not one well-formed Payment
            challenge with a ``charge`` intent, a method the instrument can pay and a
            ``request`` that is base64url JSON, or when the challenge has expired.
    """
    header = headers[0] if isinstance(headers, list) and headers else ""
    params = _auth_params(str(header))
    missing = [name for name in _REQUIRED if not params.get(name)]
    if missing:
        raise invalid(FIELD, f"the Payment challenge has no {', '.join(missing)} auth-param")
    _check_payable(params, network, now)
    return Challenge(params, _decode_request(params["request"]))


def _auth_params(header: str) -> dict[str, str]:
    scheme = _SCHEME.match(header)
    if scheme is None:
        raise invalid(FIELD, "not a 'Payment' challenge")
    params: dict[str, str] = {}
    position = scheme.end()
    while position < len(header):
        match = _PARAM.match(header, position)
        if match is None:
            raise invalid(FIELD, "must be exactly one Payment challenge of name=value auth-params")
        name, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = _ESCAPE.sub(r"\1", value[1:-1])
        params.setdefault(name, value)
        position = match.end()
    return params


def _check_payable(params: dict[str, str], network: str, now: float) -> None:
    if params["intent"].lower() != "charge":
        raise invalid(FIELD, f"intent {params['intent']!r} is not supported; only 'charge' is")
    method = params["method"].lower()
    if METHOD_NETWORK.get(method) != network:
        raise invalid(FIELD, f"method {method!r} cannot be paid from a {network} instrument")
    if len(params["id"]) > 512:
        raise invalid(FIELD, "the challenge id is longer than 512 characters")
    expires = params.get("expires")
    if expires is not None and _epoch(expires) <= now:
        raise invalid(FIELD, f"the challenge expired at {expires}")


def _epoch(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise invalid(FIELD, f"expires {text[:40]!r} is not an RFC 3339 time") from exc
    if moment.tzinfo is None:
        raise invalid(FIELD, f"expires {text[:40]!r} has no time zone")
    return moment.timestamp()


def _decode_request(encoded: str) -> dict[str, object]:
    try:
        if re.fullmatch(r"[A-Za-z0-9_-]+", encoded) is None:
            raise ValueError("not base64url")
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        request = load_json(raw)
    except (binascii.Error, ValueError) as exc:
        raise invalid(FIELD, f"challenge request is not base64url JSON: {exc}") from exc
    except RecursionError as exc:
        raise invalid(FIELD, "challenge request is JSON nested too deeply") from exc
    if not isinstance(request, dict):
        raise invalid(FIELD, "challenge request is not a JSON object")
    return request
