"""GetResourcePaymentToken through boto3: provider tokens of the shape their APIs expect."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from spendguard.emulator import PaymentsEmulator, response_problems


def _claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    parts = token.split(".")
    assert len(parts) == 3
    header, claims = (
        json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2]
    )
    return header, claims


def _token(emulator: PaymentsEmulator, request: dict[str, Any], **config: Any) -> dict[str, Any]:
    client = emulator.client(Config(**config)) if config else emulator.client()
    response = client.get_resource_payment_token(
        workloadIdentityToken="any-workload-token",
        resourceCredentialProviderName="my-cdp-provider",
        paymentTokenRequest=request,  # type: ignore[arg-type]
    )
    assert response_problems("GetResourcePaymentToken", response) == []
    return dict(response["paymentTokenResponse"])


def test_coinbase_cdp_bearer_token_is_a_jwt_for_the_request(emulator: PaymentsEmulator) -> None:
    request = {"requestMethod": "POST", "requestPath": "/platform/v2/evm/accounts"}
    out = _token(emulator, {"coinbaseCdpTokenRequest": request})["coinbaseCdpTokenResponse"]
    header, claims = _claims(out["bearerToken"])
    assert header["alg"] == "ES256"
    assert claims["uri"] == "POST api.cdp.coinbase.com/platform/v2/evm/accounts"
    assert claims["sub"] == "my-cdp-provider"
    assert claims["exp"] - claims["nbf"] == 120
    assert abs(claims["nbf"] - emulator.now()) < 2
    assert "walletAuthToken" not in out


def test_coinbase_cdp_wallet_token_hashes_the_body(emulator: PaymentsEmulator) -> None:
    body = {"name": "agent-wallet"}
    request = {
        "requestMethod": "POST",
        "requestHost": "cdp.example.com",
        "requestPath": "/v2/accounts",
        "includeWalletAuthToken": True,
        "requestBody": json.dumps(body),
    }
    out = _token(emulator, {"coinbaseCdpTokenRequest": request})["coinbaseCdpTokenResponse"]
    _, claims = _claims(out["walletAuthToken"])
    assert claims["uris"] == ["POST cdp.example.com/v2/accounts"]
    expected = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    assert claims["reqHash"] == expected


@pytest.mark.parametrize("signature", [False, True])
def test_stripe_privy_basic_auth_and_optional_signature(
    emulator: PaymentsEmulator, signature: bool
) -> None:
    request = {
        "requestPath": "/v1/wallets",
        "requestBody": '{"chain_type": "ethereum"}',
        "includeAuthorizationSignature": signature,
    }
    out = _token(emulator, {"stripePrivyTokenRequest": request})["stripePrivyTokenResponse"]
    app_id, _, secret = base64.b64decode(out["basicAuthToken"]).decode().partition(":")
    assert app_id == out["appId"]
    assert secret
    assert ("authorizationSignature" in out) is signature
    assert ("requestExpiry" in out) is signature
    if signature:
        assert len(base64.b64decode(out["authorizationSignature"])) == 64
        assert out["requestExpiry"] == pytest.approx(emulator.now() * 1000 + 120_000, abs=2000)


def test_a_body_that_must_be_json_is_checked(emulator: PaymentsEmulator) -> None:
    request = {
        "requestPath": "/v1/wallets",
        "requestBody": "not json",
        "includeAuthorizationSignature": True,
    }
    with pytest.raises(ClientError) as info:
        _token(emulator, {"stripePrivyTokenRequest": request})
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_the_request_is_validated_against_the_model(emulator: PaymentsEmulator) -> None:
    both = {
        "coinbaseCdpTokenRequest": {"requestMethod": "GET", "requestPath": "/x"},
        "stripePrivyTokenRequest": {"requestPath": "/x", "requestBody": "{}"},
    }
    with pytest.raises(ClientError) as info:
        _token(emulator, both, parameter_validation=False)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    names = [f["name"] for f in info.value.response["fieldList"]]  # type: ignore[typeddict-item]
    assert names == ["paymentTokenRequest"]
