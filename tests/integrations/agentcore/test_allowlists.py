"""Allowlists of networks, recipients and origins (deny by default), and 402 challenges whose
x402 v1 body and v2 header disagree, refused by the pre-sign policy with a rule code."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest

from spendguard import InvalidArgumentError
from spendguard.pricing import Blocked
from spendguard_agentcore import (
    USDC_ASSETS,
    Allowlists,
    ChallengeError,
    SpendGuardPreSignPolicy,
    normalize_assets,
    payment_options,
)

BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
SOLANA_USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
SELLER = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
OTHER = "0x1111111111111111111111111111111111111111"
URL = "https://api.example.com/data"
ASSETS = normalize_assets(USDC_ASSETS)


def accept(
    units: str,
    *,
    network: str = "base",
    asset: str = BASE_USDC,
    pay_to: str | None = SELLER,
    resource: str | None = URL,
    key: str = "maxAmountRequired",
) -> dict[str, Any]:
    entry: dict[str, Any] = {"scheme": "exact", "network": network, "asset": asset, key: units}
    if pay_to is not None:
        entry["payTo"] = pay_to
    if resource is not None:
        entry["resource"] = resource
    return entry


def v1(*accepts: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 402, "headers": {}, "body": {"x402Version": 1, "accepts": list(accepts)}}


def v2(*accepts: dict[str, Any], resource: str = URL, body: object = None) -> dict[str, Any]:
    payload = {"x402Version": 2, "resource": {"url": resource}, "accepts": list(accepts)}
    header = base64.b64encode(json.dumps(payload).encode()).decode()
    return {"statusCode": 402, "headers": {"PAYMENT-REQUIRED": header}, "body": body or {}}


def v2_accept(units: str, **kwargs: Any) -> dict[str, Any]:
    return accept(units, key="amount", resource=None, **{"network": "eip155:8453", **kwargs})


def mpp(units: str, *, realm: str = "api.example.com", chain: int = 8453) -> dict[str, Any]:
    request = {
        "amount": units,
        "currency": BASE_USDC,
        "recipient": SELLER,
        "methodDetails": {"chainId": chain},
    }
    encoded = base64.urlsafe_b64encode(json.dumps(request).encode()).decode().rstrip("=")
    header = (
        f'Payment id="ch-1", realm="{realm}", method="evm", intent="charge", request="{encoded}"'
    )
    return {"statusCode": 402, "headers": {"WWW-Authenticate": header}, "body": {}}


def refusal(allow: Allowlists, request: dict[str, Any]) -> ChallengeError:
    with pytest.raises(ChallengeError) as caught:
        allow.check(payment_options(request, ASSETS))
    return caught.value


def assert_says_no_value(error: ChallengeError) -> None:
    message = error.model_message
    assert message.startswith("Payment blocked")
    for secret in (SELLER, SELLER.lower(), OTHER, "example", "http", "0x", "base", "eip155"):
        assert secret not in message


# -- what each option says ---------------------------------------------------------------------


def test_options_carry_network_recipient_and_origin_in_every_shape() -> None:
    (one,) = payment_options(v1(accept("5000")), ASSETS)
    assert (one.network, one.pay_to, one.origin) == ("base", SELLER, "https://api.example.com")
    (two,) = payment_options(
        v2(v2_accept("5000"), resource="HTTPS://API.example.com:443/x"), ASSETS
    )
    assert (two.network, two.pay_to, two.origin) == (
        "eip155:8453",
        SELLER,
        "https://api.example.com",
    )
    (three,) = payment_options(mpp("5000"), ASSETS)
    assert (three.network, three.pay_to, three.origin) == (
        "eip155:8453",
        SELLER,
        "api.example.com",
    )


# -- allowlists --------------------------------------------------------------------------------


def test_no_allowlist_configured_allows_any_network_recipient_and_origin() -> None:
    Allowlists().check(payment_options(v1(accept("5000", network="polygon")), ASSETS))


@pytest.mark.parametrize(
    ("allow", "request_", "rule"),
    [
        pytest.param(
            Allowlists(networks={"solana"}), v1(accept("5000")), "allowlist_network", id="network"
        ),
        pytest.param(
            Allowlists(pay_to={OTHER}), v1(accept("5000")), "allowlist_pay_to", id="pay_to"
        ),
        pytest.param(
            Allowlists(origins={"https://other.example.org"}),
            v1(accept("5000")),
            "allowlist_origin",
            id="origin",
        ),
        pytest.param(
            Allowlists(origins={"http://api.example.com"}),
            v1(accept("5000")),
            "allowlist_origin",
            id="origin of another scheme",
        ),
        pytest.param(
            Allowlists(origins={"https://api.example.com"}),
            mpp("5000", realm="evil.example.org"),
            "allowlist_origin",
            id="mpp realm",
        ),
        pytest.param(
            Allowlists(networks={"eip155:8453"}),
            mpp("5000", chain=1),
            "allowlist_network",
            id="mpp chain",
        ),
        pytest.param(
            Allowlists(pay_to={SELLER}),
            v1(accept("5000", pay_to=None)),
            "allowlist_pay_to",
            id="an option that names no recipient",
        ),
        pytest.param(
            Allowlists(origins={"https://api.example.com"}),
            v1(accept("5000", resource=None)),
            "allowlist_origin",
            id="an option that names no resource",
        ),
        pytest.param(
            Allowlists(networks={"base"}),
            v1(accept("5000"), accept("10", network="solana", asset=SOLANA_USDC)),
            "allowlist_network",
            id="one option among allowed ones",
        ),
    ],
)
def test_once_configured_anything_not_listed_is_refused_with_its_rule(
    allow: Allowlists, request_: dict[str, Any], rule: str
) -> None:
    error = refusal(allow, request_)
    assert error.rule == rule
    assert_says_no_value(error)


def test_an_asset_off_the_asset_allowlist_is_refused_with_its_rule() -> None:
    with pytest.raises(ChallengeError) as caught:
        payment_options(v1(accept("5000", asset=OTHER)), ASSETS)
    assert caught.value.rule == "allowlist_asset"
    assert_says_no_value(caught.value)


def test_listed_options_pass_whatever_the_case_or_default_port() -> None:
    allow = Allowlists(
        networks={"BASE", "eip155:8453"},
        pay_to={SELLER.lower()},
        origins={"https://API.example.com:443/"},
    )
    allow.check(payment_options(v1(accept("5000")), ASSETS))
    allow.check(payment_options(v2(v2_accept("5000")), ASSETS))
    allow.check(payment_options(mpp("5000"), ASSETS))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"networks": "base"}, "networks"),
        ({"networks": []}, "networks"),
        ({"pay_to": [""]}, "pay_to"),
        ({"pay_to": [7]}, "pay_to"),
        ({"origins": ["api.example.com"]}, "origins"),
        ({"origins": ["https://api.example.com/data"]}, "origins"),
        ({"origins": ["ftp://api.example.com"]}, "origins"),
        ({"origins": ["https://user@api.example.com"]}, "origins"),
    ],
)
def test_a_bad_allowlist_is_a_clear_error_at_construction(
    kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Allowlists(**kwargs)
    assert caught.value.argument == argument


# -- v1 body and v2 header ---------------------------------------------------------------------


def test_a_body_and_header_that_agree_are_priced_from_the_header() -> None:
    request = v2(v2_accept("5000"), body={"x402Version": 1, "accepts": [accept("5000")]})
    assert [o.price.amount for o in payment_options(request, ASSETS)] == [Decimal("0.005")]


@pytest.mark.parametrize(
    "body_accept",
    [
        pytest.param(accept("1"), id="cheaper in the body"),
        pytest.param(accept("5000", pay_to=OTHER), id="another recipient in the body"),
        pytest.param(accept("5000", pay_to=None), id="no recipient in the body"),
    ],
)
def test_a_body_and_header_that_disagree_about_the_same_option_are_refused(
    body_accept: dict[str, Any],
) -> None:
    request = v2(v2_accept("5000"), body=json.dumps({"x402Version": 1, "accepts": [body_accept]}))
    with pytest.raises(ChallengeError) as caught:
        payment_options(request, ASSETS)
    assert caught.value.rule == "challenge_mismatch"
    assert_says_no_value(caught.value)


def test_different_options_in_body_and_header_are_not_a_disagreement() -> None:
    body = {"x402Version": 1, "accepts": [accept("9", asset=OTHER)]}
    request = v2(v2_accept("5000"), v2_accept("7000", asset=SOLANA_USDC), body=body)
    assert max(o.price.amount for o in payment_options(request, ASSETS)) == Decimal("0.007")


def test_one_disagreeing_option_among_several_refuses_the_challenge() -> None:
    body = {"x402Version": 1, "accepts": [accept("5000"), accept("999", asset=SOLANA_USDC)]}
    request = v2(v2_accept("5000"), v2_accept("7000", asset=SOLANA_USDC), body=body)
    with pytest.raises(ChallengeError, match="disagree"):
        payment_options(request, ASSETS)


# -- the policy --------------------------------------------------------------------------------


def test_the_policy_refuses_before_holding_and_reports_the_rule(payment_session: Any) -> None:
    guard = payment_session.guard()
    blocked: list[Blocked] = []
    policy = SpendGuardPreSignPolicy(
        guard, networks={"base", "eip155:8453"}, origins={URL[:23]}, on_blocked=blocked.append
    )
    assert policy(v1(accept("5000", network="polygon"))) is False
    assert policy(v1(accept("5000", resource="https://evil.example.org/x"))) is False
    mismatch = v2(v2_accept("5000"), body={"x402Version": 1, "accepts": [accept("1")]})
    assert policy(mismatch) is False
    assert [b.error.rule for b in blocked] == [
        "allowlist_network",
        "allowlist_origin",
        "challenge_mismatch",
    ]
    assert guard.snapshot().effective_available.amount == Decimal("10")
    assert policy(v1(accept("5000"))) is True
    assert policy.signed[-1].amount == Decimal("0.005")


def test_the_policy_validates_its_allowlists(payment_session: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="networks"):
        SpendGuardPreSignPolicy(payment_session.guard(), networks="base")
