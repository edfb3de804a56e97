"""Tokens the emulator hands out: JWT-shaped, decodable, and signed by nobody.

Each has the shape its consumer parses (three base64url parts; the claims a seller or
provider would read) with a fake signature, so code that decodes or forwards a token can be
tested, and nothing can mistake one for a real credential.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping

from spendguard.emulator._pricing import invalid

ISSUER = "spendguard-emulator"
_CDP_HOST = "api.cdp.coinbase.com"
_PRIVY_HOST = "api.privy.io"
_TOKEN_SECONDS = 120


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt(claims: Mapping[str, object], **header: object) -> str:
    """A compact JWS (``header.claims.signature``) with an ES256 header and a fake signature."""
    head = {"alg": "ES256", "typ": "JWT", "kid": ISSUER, **header}
    parts = [b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (head, claims)]
    signature = hashlib.sha512(".".join(parts).encode()).digest()  # 64 bytes, like ES256
    return ".".join([*parts, b64url(signature)])


def jwk_thumbprint(jwk: Mapping[str, object]) -> str:
    """The RFC 7638 thumbprint of an EC public key (what a DPoP-bound token's ``jkt`` is)."""
    required = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def resource_payment_token(params: Mapping[str, object], now: float) -> dict[str, object]:
    """The GetResourcePaymentToken reply for a (validated) request.

    Raises:
        ApiError: ValidationException when a request body that must be JSON is not.
    """
    provider = str(params["resourceCredentialProviderName"])
    request = params["paymentTokenRequest"]
    assert isinstance(request, dict)
    if "coinbaseCdpTokenRequest" in request:
        cdp = _coinbase(provider, request["coinbaseCdpTokenRequest"], now)
        return {"coinbaseCdpTokenResponse": cdp}
    privy = _privy(provider, request["stripePrivyTokenRequest"], now)
    return {"stripePrivyTokenResponse": privy}


def _coinbase(provider: str, request: dict[str, object], now: float) -> dict[str, object]:
    host = request.get("requestHost", _CDP_HOST)
    uri = f"{request['requestMethod']} {host}{request['requestPath']}"
    issued = int(now)
    claims: dict[str, object] = {"sub": provider, "iss": "cdp", "uri": uri}
    claims.update(nbf=issued, exp=issued + _TOKEN_SECONDS)
    out: dict[str, object] = {"bearerToken": jwt(claims, nonce=uuid.uuid4().hex)}
    if request.get("includeWalletAuthToken"):
        body = _json_body(request.get("requestBody"), "coinbaseCdpTokenRequest")
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        wallet = {"iat": issued, "nbf": issued, "jti": uuid.uuid4().hex, "uris": [uri]}
        out["walletAuthToken"] = jwt({**wallet, "reqHash": digest})
    return out


def _privy(provider: str, request: dict[str, object], now: float) -> dict[str, object]:
    app_id = "emulator-" + hashlib.sha256(provider.encode()).hexdigest()[:24]
    secret = hashlib.sha256(f"{provider}-secret".encode()).hexdigest()
    out: dict[str, object] = {
        "appId": app_id,
        "basicAuthToken": base64.b64encode(f"{app_id}:{secret}".encode()).decode(),
    }
    if request.get("includeAuthorizationSignature"):
        body = _json_body(request["requestBody"], "stripePrivyTokenRequest")
        expiry = int(now * 1000) + _TOKEN_SECONDS * 1000
        url = f"https://{request.get('requestHost', _PRIVY_HOST)}{request['requestPath']}"
        signed = json.dumps({"body": body, "url": url, "expiry": expiry}, sort_keys=True)
        signature = hashlib.sha512(signed.encode()).digest()  # the size of a P-256 signature
        out["authorizationSignature"] = base64.b64encode(signature).decode()
        out["requestExpiry"] = expiry
    return out


def _json_body(text: object, member: str) -> object:
    if text is None:
        return {}
    try:
        return json.loads(str(text))
    except ValueError as exc:
        field = f"paymentTokenRequest.{member}.requestBody"
        raise invalid(field, "must be JSON") from exc
