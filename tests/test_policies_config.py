"""Policies from TOML: read at start-up, errors that name the key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from support import ARN, SID, Clock, ScriptedClient, Session

from spendguard import InvalidArgumentError, Money, SpendGuard
from spendguard.policies import Policies, PolicyViolationError, ThresholdEvent

GOOD = """
[policies]
per_call_max = "1.00"
thresholds = [0.5, "0.9"]

[policies.tools.buy_report]
per_call_max = "0.50"
cap = "2.00"

[[policies.windows]]
per = "hour"
amount = "5"

[[policies.windows]]
per = 90
count = 10
tool = "search"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spendguard.toml"
    path.write_text(text)
    return path


def test_a_toml_file_builds_the_same_policies_as_code(tmp_path: Path) -> None:
    events: list[ThresholdEvent] = []
    policies = Policies.from_toml(write(tmp_path, GOOD), on_threshold=events.append)
    assert policies.per_call_max == Money.of("1.00")
    assert policies.thresholds == (Decimal("0.5"), Decimal("0.9"))
    report = policies.tools["buy_report"]
    assert (report.per_call_max, report.cap) == (Money.of("0.50"), Money.of("2.00"))
    hourly, search = policies.windows
    assert (hourly.seconds, hourly.amount, hourly.count, hourly.tool) == (
        3600.0,
        Money.of("5"),
        None,
        None,
    )
    assert (search.seconds, search.amount, search.count, search.tool) == (90.0, None, 10, "search")
    assert policies.on_threshold is not None

    session = Session(max_spend="10.00", available="10.00")
    guard = SpendGuard(
        ARN, SID, client=ScriptedClient(session), policies=policies, **Clock().kwargs
    )
    guard.reserve("0.50", tool="buy_report").release()
    with pytest.raises(PolicyViolationError) as info:
        guard.reserve("0.60", tool="buy_report")
    assert info.value.rule == "per_call_max"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[policies]\nper_call_max = "ten"', "policies.per_call_max"),
        ("[policies]\nper_call_max = 0.5", "policies.per_call_max"),
        ('[policies]\nper_cal_max = "1"', "policies.per_cal_max"),
        ("[policies]\nthresholds = [0.8, 2]", "policies.thresholds[1]"),
        ("[policies]\nthresholds = 0.8", "policies.thresholds"),
        ('[policies.tools.buy_report]\ncap = "-2"', "policies.tools.buy_report.cap"),
        ('[policies.tools.buy_report]\nlimit = "2"', "policies.tools.buy_report.limit"),
        ('[policies]\ntools = "buy_report"', "policies.tools"),
        ('[policies.tools]\nbuy_report = "2"', "policies.tools.buy_report"),
        (
            '[[policies.windows]]\nper = "hour"\namount = "1"\n'
            '[[policies.windows]]\nper = "hour"\namount = "x"',
            "policies.windows[1].amount",
        ),
        ('[[policies.windows]]\namount = "1"', "policies.windows[0].per"),
        ('[[policies.windows]]\nper = "week"\namount = "1"', "policies.windows[0].per"),
        ('[[policies.windows]]\nper = "day"', "policies.windows[0].amount"),
        ('[[policies.windows]]\nper = "day"\ncount = 1.5', "policies.windows[0].count"),
        ('[[policies.windows]]\nper = "day"\ncount = 1\ntool = ""', "policies.windows[0].tool"),
        ('[[policies.windows]]\nper = "day"\ncount = 1\nevery = 2', "policies.windows[0].every"),
        ('[policies]\nwindows = {per = "day"}', "policies.windows"),
        ('[policies]\nwindows = ["day"]', "policies.windows[0]"),
        ('policies = "strict"', "policies"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        Policies.from_toml(write(tmp_path, text))
    assert info.value.argument == key
    assert str(info.value).startswith(f"{key}: ")


def test_a_file_without_policies_or_unreadable_or_not_toml_is_a_clear_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(InvalidArgumentError, match=r"policies: .* has no \[policies\] table"):
        Policies.from_toml(write(tmp_path, "[other]\nx = 1"))
    with pytest.raises(InvalidArgumentError, match="cannot read it"):
        Policies.from_toml(tmp_path / "missing.toml")
    with pytest.raises(InvalidArgumentError, match="is not valid TOML"):
        Policies.from_toml(write(tmp_path, "[policies\n"))


def test_from_mapping_takes_the_same_shape() -> None:
    policies = Policies.from_mapping(
        {"windows": [{"per": "minute", "count": 3}]}, prefix="spendguard.policies"
    )
    assert policies.windows[0].count == 3
    with pytest.raises(InvalidArgumentError) as info:
        Policies.from_mapping({"windows": [{"per": "minute"}]}, prefix="spendguard.policies")
    assert info.value.argument == "spendguard.policies.windows[0].amount"
