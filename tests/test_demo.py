"""The demo: a scripted agent whose paid tool calls go through the guard."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from spendguard import Money
from spendguard.demo import main, run_demo


def test_demo_pays_what_fits_blocks_what_does_not_and_matches_the_server() -> None:
    out = io.StringIO()
    report = run_demo(out, budget="1.00")
    assert report.blocked == ["premium_report"]
    assert sorted(report.paid, key=lambda m: m.amount) == sorted(
        [Money.of(p) for p in ("0.05", "0.20", "0.20", "0.20", "0.20", "0.02", "0.10")],
        key=lambda m: m.amount,
    )
    assert report.server_available == Decimal("0.03")
    assert report.guard_available == Decimal("0.03")
    assert report.agreed
    text = out.getvalue()
    assert "BLOCKED" in text
    assert "Do not retry" in text
    assert "4 calls at once" in text
    assert "they agree" in text


def test_small_budget_blocks_more_and_still_agrees() -> None:
    report = run_demo(io.StringIO(), budget="0.30")
    # 0.05 search; then 4 x 0.20 compete for 0.25: exactly one wins.
    assert report.paid.count(Money.of("0.20")) == 1
    assert report.blocked.count("fetch_article") == 3
    assert report.agreed
    assert report.server_available == Decimal("0.30") - sum(m.amount for m in report.paid)


def test_main_prints_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("spendguard demo: an agent with a 1.00 USD budget")
    assert "Server: 0.03 USD left; guard: 0.03 USD left; they agree." in out


def test_every_run_prints_the_same_lines_in_the_same_order() -> None:
    runs = []
    for _ in range(3):
        out = io.StringIO()
        run_demo(out, budget="1.00")
        runs.append(out.getvalue().splitlines()[2:])  # past the session id and its URL
    assert runs[0] == runs[1] == runs[2]
    assert "      all admitted: 0.80 USD held for calls in flight" in runs[0]


def test_a_bad_budget_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--budget", "abc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "budget" in err
    assert "Traceback" not in err
