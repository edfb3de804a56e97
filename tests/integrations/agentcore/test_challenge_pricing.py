"""Pricing 402 challenges in the four shapes the AgentCore SDK pays, and refusing the rest."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from spendguard import PricingError
from spendguard.emulator import x402_challenge
from spendguard.pricing import Blocked
from spendguard_agentcore import (
    USDC_ASSETS,
    ChallengeError,
    SpendGuardPreSignPolicy,
    normalize_assets,
    payment_options,
)

BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
SOLANA_USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
ASSETS = normalize_assets(USDC_ASSETS)


def prices(request: object) -> list[Decimal]:
    return [option.price.amount for option in payment_options(request, ASSETS)]


def accept(units: object, asset: str = BASE_USDC, key: str = "maxAmountRequired") -> dict[str, Any]:
    return {"scheme": "exact", "network": "base", "asset": asset, "payTo": "0xabc", key: units}


def v1(*accepts: dict[str, Any]) -> dict[str, Any]:
    return {"x402Version": 1, "accepts": list(accepts)}


def v2_header(*accepts: dict[str, Any]) -> str:
    payload = {"x402Version": 2, "accepts": list(accepts)}
    return base64.b64encode(json.dumps(payload).encode()).decode()


def mpp_challenge(amount: object, currency: str = BASE_USDC, intent: str = "charge") -> str:
    request = {"amount": amount, "currency": currency, "recipient": "0xabc"}
    encoded = base64.urlsafe_b64encode(json.dumps(request).encode()).decode().rstrip("=")
    return (
        f'Payment id="ch-{amount}", realm="api.example.com", method="evm", '
        f'intent="{intent}", request="{encoded}"'
    )


def test_x402_v1_dict_body() -> None:
    assert prices({"statusCode": 402, "headers": {}, "body": v1(accept("5000"))}) == [
        Decimal("0.005")
    ]


def test_x402_v1_json_string_body() -> None:
    body = json.dumps(v1(accept("250000")))
    assert prices({"statusCode": 402, "headers": {}, "body": body}) == [Decimal("0.25")]


@pytest.mark.parametrize("name", ["Payment-Required", "PAYMENT-REQUIRED", "payment-required"])
def test_x402_v2_header_in_any_case(name: str) -> None:
    header = v2_header(accept("1500000", key="amount"))
    assert prices({"statusCode": 402, "headers": {name: header}, "body": {}}) == [Decimal("1.5")]


def test_mpp_www_authenticate_payment_challenges() -> None:
    headers = {"WWW-Authenticate": [mpp_challenge("10000"), mpp_challenge(20000, SOLANA_USDC)]}
    assert prices({"statusCode": 402, "headers": headers, "body": {}}) == [
        Decimal("0.01"),
        Decimal("0.02"),
    ]


def test_the_emulator_challenges_price_as_asked() -> None:
    for version in (1, 2):
        assert prices(x402_challenge("0.37", version=version)) == [Decimal("0.37")]


def test_every_option_is_priced_so_the_policy_can_take_the_most_expensive() -> None:
    headers = {"www-authenticate": mpp_challenge("900000")}
    body = v1(accept("100000"), accept("300000", asset=SOLANA_USDC))
    assert sorted(prices({"statusCode": 402, "headers": headers, "body": body})) == [
        Decimal("0.1"),
        Decimal("0.3"),
        Decimal("0.9"),
    ]


def test_evm_assets_match_case_insensitively() -> None:
    assert prices({"body": v1(accept("1", asset=BASE_USDC.upper().replace("0X", "0x")))}) == [
        Decimal("0.000001")
    ]


def test_both_v1_and_v2_amount_fields_count_the_higher() -> None:
    both = {**accept("100"), "amount": "200"}
    assert prices({"body": v1(both)}) == [Decimal("0.0002")]


def test_mpp_challenges_the_sdk_never_pays_are_skipped() -> None:
    headers = {
        "WWW-Authenticate": [mpp_challenge("999999999", intent="session"), mpp_challenge("1")]
    }
    assert prices({"headers": headers, "body": {"error": "payment required"}}) == [
        Decimal("0.000001")
    ]


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param({"body": v1(accept("5000", asset="0xdeadbeef"))}, id="unknown x402 asset"),
        pytest.param(
            {"headers": {"WWW-Authenticate": mpp_challenge("1", currency="usd")}}, id="unknown mpp"
        ),
        pytest.param(
            {"body": v1(accept("5000"), accept("5000", asset="0xdeadbeef"))},
            id="one unknown option among known ones",
        ),
        pytest.param({"body": v1(accept("-5"))}, id="negative"),
        pytest.param({"body": v1(accept("0.5"))}, id="fraction of an atomic unit"),
        pytest.param({"body": v1(accept(5.0))}, id="float"),
        pytest.param({"body": v1(accept(True))}, id="bool"),
        pytest.param({"body": v1(accept("١٢"))}, id="non-ASCII digits"),
        pytest.param({"body": v1(accept("9" * 41))}, id="too many digits"),
        pytest.param({"body": v1({"asset": BASE_USDC})}, id="no amount"),
        pytest.param({"body": v1({"maxAmountRequired": "1"})}, id="no asset"),
        pytest.param({"body": {"x402Version": 1, "accepts": []}}, id="empty accepts"),
        pytest.param({"body": {"x402Version": 1, "accepts": "all"}}, id="accepts not a list"),
        pytest.param({"body": v1("not an object")}, id="accept not an object"),  # type: ignore[arg-type]
        pytest.param({"headers": {"Payment-Required": "%%%"}}, id="v2 header not base64 JSON"),
        pytest.param({"headers": {"Payment-Required": ""}}, id="v2 header empty"),
        pytest.param(
            {"headers": {"Payment-Required": base64.b64encode(b"[1]").decode()}},
            id="v2 header not an object",
        ),
        pytest.param({"body": "not json"}, id="body not JSON, no MPP"),
        pytest.param({"body": {"error": "pay"}}, id="nothing payable"),
        pytest.param({"headers": {"WWW-Authenticate": "Bearer realm=x"}}, id="not a Payment auth"),
        pytest.param("402", id="not a mapping"),
        pytest.param({"body": "[" * 100_000 + "]" * 100_000}, id="JSON nested too deep"),
        pytest.param(
            {"headers": {"Payment-Required": base64.b64encode(b"[" * 100_000).decode()}},
            id="v2 header nested too deep",
        ),
    ],
)
def test_anything_that_cannot_be_priced_blocks(request_: object) -> None:
    with pytest.raises(ChallengeError) as caught:
        payment_options(request_, ASSETS)
    assert isinstance(caught.value, PricingError)
    assert caught.value.model_message.startswith("Payment blocked")


@given(
    v1_units=st.lists(st.integers(0, 10**17), max_size=3),
    v2_units=st.lists(st.integers(0, 10**17), max_size=3),
    mpp_units=st.lists(st.integers(0, 10**17), max_size=3),
)
def test_the_highest_option_in_any_mix_is_exactly_its_units_over_a_million(
    v1_units: list[int], v2_units: list[int], mpp_units: list[int]
) -> None:
    assume(v1_units or v2_units or mpp_units)
    headers: dict[str, Any] = {"WWW-Authenticate": [mpp_challenge(str(u)) for u in mpp_units]}
    if v2_units:
        headers["payment-required"] = v2_header(*(accept(str(u), key="amount") for u in v2_units))
    body = v1(*(accept(u) for u in v1_units)) if v1_units and not v2_units else {}
    expected = [*mpp_units, *(v2_units or v1_units)]
    assert max(prices({"statusCode": 402, "headers": headers, "body": body})) == Decimal(
        max(expected)
    ).scaleb(-6)


def test_allowlists_are_validated() -> None:
    with pytest.raises(ValueError, match="decimals"):
        normalize_assets({"0xabc": 19})
    assert normalize_assets({"0xABC": 2}) == {"0xabc": 2}


def nested(depth: int) -> list[Any]:
    """A list nested ``depth`` deep, built without recursion."""
    outer: list[Any] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


def mpp_raw(request_json: str) -> dict[str, Any]:
    encoded = base64.urlsafe_b64encode(request_json.encode()).decode().rstrip("=")
    header = f'Payment id="c", realm="r", method="evm", intent="charge", request="{encoded}"'
    return {"statusCode": 402, "headers": {"WWW-Authenticate": header}, "body": {}}


def v1_raw(units_json: str) -> dict[str, Any]:
    body = f'{{"x402Version": 1, "accepts": [{{"asset": "{BASE_USDC}", "maxAmountRequired": '
    return {"statusCode": 402, "headers": {}, "body": body + units_json + "}]}"}


DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "9" * 5000  # over Python's 4300-digit int/str conversion limit
LONG = "9" * 4000  # under it, far over any amount


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        pytest.param(
            mpp_raw(f'{{"amount": "1", "currency": "{BASE_USDC}", "x": {DEEP}}}'),
            "nested too deeply",
            id="mpp request nested too deep",
        ),
        pytest.param(
            mpp_raw(f'{{"amount": 1e99999999999999999999, "currency": "{BASE_USDC}"}}'),
            "not a count of atomic units",
            id="mpp amount 1e99999999999999999999",
        ),
        pytest.param(
            mpp_raw(f'{{"amount": {LONG}, "currency": "{BASE_USDC}"}}'),
            "too large",
            id="mpp amount of 4000 digits",
        ),
        pytest.param(
            mpp_raw(f'{{"amount": "1", "currency": "{BASE_USDC}", "decimals": {LONG}}}'),
            "decimals",
            id="mpp decimals of 4000 digits",
        ),
        pytest.param(
            v1_raw("1e99999999999999999999"), "not a count of atomic units", id="v1 amount 1e999"
        ),
        pytest.param(v1_raw(LONG), "too large", id="v1 amount of 4000 digits"),
        pytest.param(v1_raw(HUGE), "number too long", id="v1 amount over the int limit"),
        pytest.param(v1_raw(DEEP), "nested too deeply", id="v1 body nested too deep"),
        pytest.param(
            {"headers": {"Payment-Required": base64.b64encode(b"[" * 100_000).decode()}},
            "nested too deeply",
            id="v2 header nested too deep",
        ),
        pytest.param(
            {"body": v1({"asset": BASE_USDC, "maxAmountRequired": 10**5000})},
            "too large",
            id="dict amount over the int limit",
        ),
        pytest.param(
            {"body": v1({"asset": BASE_USDC, "maxAmountRequired": -(10**5000)})},
            "not a count of atomic units",
            id="dict amount negative over the int limit",
        ),
        pytest.param(
            {"body": v1({"asset": BASE_USDC, "maxAmountRequired": nested(100_000)})},
            "not a count of atomic units",
            id="dict amount nested too deep",
        ),
    ],
)
def test_hostile_json_blocks_with_a_clear_message(
    payment_session: Any, request_: dict[str, Any], says: str
) -> None:
    with pytest.raises(ChallengeError, match=says):
        payment_options(request_, ASSETS)
    blocked: list[Blocked] = []
    policy = SpendGuardPreSignPolicy(payment_session.guard(), on_blocked=blocked.append)
    assert policy(request_) is False
    (refusal,) = blocked
    assert says in refusal.message
    assert len(refusal.message) < 400


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@given(amount=JSON_VALUES, currency=JSON_VALUES, decimals=JSON_VALUES, asset=JSON_VALUES)
def test_any_json_in_any_field_is_priced_or_blocked(
    amount: object, currency: object, decimals: object, asset: object
) -> None:
    request = {"amount": amount, "currency": currency, "decimals": decimals}
    encoded = base64.urlsafe_b64encode(json.dumps(request).encode()).decode().rstrip("=")
    mpp = f'Payment id="c", realm="r", method="evm", intent="charge", request="{encoded}"'
    accepts = [
        {"asset": asset, "maxAmountRequired": amount},
        {"asset": BASE_USDC, "amount": amount},
    ]
    for request_ in (
        {"headers": {"WWW-Authenticate": mpp}, "body": {}},
        {"headers": {}, "body": v1(*accepts)},
        {"headers": {}, "body": json.dumps(v1(*accepts))},
        {"headers": {"Payment-Required": v2_header(*accepts)}, "body": {}},
    ):
        outcome = _priced_or_blocked(request_)
        assert outcome == "blocked" or all(price >= 0 for price in outcome)


def _priced_or_blocked(request: dict[str, Any]) -> list[Decimal] | str:
    try:
        return prices(request)
    except ChallengeError as error:
        return "blocked" if error.model_message.startswith("Payment blocked") else str(error)
