"""The pytest plugin, as another project meets it: installed, found through its entry point.

Each test writes an outside project's test files with ``pytester`` and runs pytest on them in
a subprocess, so pytest discovers the plugin from the installed distribution's ``pytest11``
entry point, as it would in an agent team's repository. The files use the fixtures and
spendguard's public API only; the pytest examples of docs/emulator.md run beside them.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "emulator.md"
TIMEOUT = 120  # seconds, for one outside run

EVERY_FIXTURE = """
    import os
    import time
    from decimal import Decimal

    import boto3
    import pytest

    from spendguard import BudgetExceededError, SpendGuard
    from spendguard.emulator import ENDPOINT_ENV_VAR, PaymentsEmulator

    seen = {}


    def test_the_session_is_funded_on_the_running_emulator(
        agentcore_payment_session, agentcore_emulator, agentcore_client
    ):
        session = agentcore_payment_session
        assert session.budget == Decimal("10.00")
        assert session.user_id == "user-1"
        assert agentcore_emulator.available(session.payment_session_id) == Decimal("10.00")
        read = agentcore_client.get_payment_session(
            paymentManagerArn=session.payment_manager_arn,
            paymentSessionId=session.payment_session_id,
            userId=session.user_id,
        )["paymentSession"]
        assert read["expiryTimeInMinutes"] == 60
        seen["emulator"], seen["client"] = agentcore_emulator, agentcore_client


    def test_the_emulator_and_client_are_shared_by_the_run(agentcore_emulator, agentcore_client):
        assert agentcore_emulator is seen["emulator"]
        assert agentcore_client is seen["client"]


    def test_the_instrument_is_the_sessions_wallet(
        agentcore_payment_session, agentcore_payment_instrument, agentcore_client
    ):
        session = agentcore_payment_session
        assert agentcore_payment_instrument == session.payment_instrument_id
        wallet = agentcore_client.get_payment_instrument(
            paymentManagerArn=session.payment_manager_arn,
            paymentInstrumentId=agentcore_payment_instrument,
            userId=session.user_id,
        )["paymentInstrument"]
        assert wallet["status"] == "ACTIVE"


    def test_the_guard_is_on_the_session(spendguard_guard, agentcore_payment_session):
        assert isinstance(spendguard_guard, SpendGuard)
        with spendguard_guard.reserve("9.00"):
            pass
        with pytest.raises(BudgetExceededError) as blocked:
            spendguard_guard.reserve("1.50")
        assert blocked.value.session_id == agentcore_payment_session.payment_session_id


    def test_the_factory_makes_other_sessions(
        agentcore_payment_session_factory, agentcore_emulator
    ):
        made = agentcore_payment_session_factory(
            budget="0.50", user_id="alice", expiry_minutes=15
        )
        assert (made.budget, made.user_id) == (Decimal("0.50"), "alice")
        assert agentcore_emulator.available(made.payment_session_id) == Decimal("0.50")
        assert agentcore_payment_session_factory(budget=None).budget is None


    def test_the_env_points_boto3_at_the_shared_emulator(
        agentcore_env, agentcore_emulator, agentcore_payment_session
    ):
        assert os.environ[ENDPOINT_ENV_VAR] == agentcore_emulator.endpoint_url
        assert agentcore_env[ENDPOINT_ENV_VAR] == agentcore_emulator.endpoint_url
        assert "AWS_SESSION_TOKEN" not in os.environ
        session = agentcore_payment_session
        read = boto3.client("bedrock-agentcore").get_payment_session(
            paymentManagerArn=session.payment_manager_arn,
            paymentSessionId=session.payment_session_id,
            userId=session.user_id,
        )
        assert read["paymentSession"]["paymentSessionId"] == session.payment_session_id
        guard = SpendGuard(
            session.payment_manager_arn, session.payment_session_id, user_id=session.user_id
        )
        with guard.reserve("1.00"):
            pass


    def test_the_env_is_put_back_after_the_test():
        assert os.environ[ENDPOINT_ENV_VAR] == "http://outside.invalid"
        assert os.environ["AWS_SESSION_TOKEN"] == "outside-token"


    def test_faults_and_the_clock_are_the_shared_emulators(
        agentcore_faults, agentcore_clock, agentcore_emulator
    ):
        assert agentcore_faults is agentcore_emulator.faults
        assert agentcore_faults.calls() == 0
        agentcore_faults.fail("GetPaymentSession", "AccessDeniedException", times=5)
        agentcore_clock.advance(3600)
        assert abs(agentcore_emulator.now() - agentcore_clock.now()) < 1
        assert agentcore_clock.now() > time.time() + 3500


    def test_faults_and_the_clock_are_undone_after_the_test(
        agentcore_emulator, agentcore_client, agentcore_payment_session
    ):
        assert abs(agentcore_emulator.now() - time.time()) < 60
        session = agentcore_payment_session
        agentcore_client.get_payment_session(  # no AccessDeniedException left over
            paymentManagerArn=session.payment_manager_arn,
            paymentSessionId=session.payment_session_id,
            userId=session.user_id,
        )


    def test_an_isolated_emulator_is_the_tests_own(
        agentcore_emulator_isolated, agentcore_emulator
    ):
        assert isinstance(agentcore_emulator_isolated, PaymentsEmulator)
        assert agentcore_emulator_isolated.endpoint_url != agentcore_emulator.endpoint_url
        made = agentcore_emulator_isolated.create_session("1.00")
        listed = agentcore_emulator_isolated.client().list_payment_sessions(
            paymentManagerArn=made.payment_manager_arn, userId="user-1"
        )["paymentSessions"]
        assert [s["paymentSessionId"] for s in listed] == [made.payment_session_id]
        seen["isolated"] = agentcore_emulator_isolated


    def test_an_isolated_emulator_stops_after_its_test(agentcore_emulator_isolated):
        assert agentcore_emulator_isolated is not seen["isolated"]
        with pytest.raises(RuntimeError, match="not running"):
            _ = seen["isolated"].endpoint_url
"""

NO_FIXTURE = """
    import os
    import sys
    import threading


    def test_loaded_but_idle(pytestconfig):
        plugin = pytestconfig.pluginmanager.get_plugin("spendguard")
        assert plugin is sys.modules["spendguard.pytest_plugin"]
        assert "spendguard.emulator" not in sys.modules
        assert "boto3" not in sys.modules
        assert [t.name for t in threading.enumerate() if "emulator" in t.name] == []
        aws = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
        assert aws == {"AWS_DEFAULT_REGION": "eu-west-3"}
"""


def _outside_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the AWS variables the outside tests expect to see untouched."""
    import os  # noqa: PLC0415

    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")


def _pytest_section_blocks() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("\n## In pytest\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"^```python\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)


def test_the_entry_point_names_the_plugin_module() -> None:
    (found,) = entry_points(group="pytest11", name="spendguard")
    assert found.value == "spendguard.pytest_plugin"
    assert found.dist is not None
    assert found.dist.name == "spendguard"


def test_an_outside_project_uses_every_fixture_and_the_docs_examples(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", "http://outside.invalid")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "outside-token")
    blocks = _pytest_section_blocks()
    assert len(blocks) >= 4
    examples = {f"test_docs_example_{n}": block for n, block in enumerate(blocks)}
    pytester.makepyfile(test_agent=EVERY_FIXTURE, **examples)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=TIMEOUT)
    every = EVERY_FIXTURE.count("\n    def test_")
    result.assert_outcomes(passed=every + sum(b.count("\ndef test_") for b in blocks))


def test_the_plugin_does_nothing_until_a_fixture_is_requested(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _outside_env(monkeypatch)
    pytester.makepyfile(test_idle=NO_FIXTURE)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=TIMEOUT)
    result.assert_outcomes(passed=1)


def test_without_autoload_the_plugin_loads_by_its_entry_point_name(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        test_session="""
        def test_funded(agentcore_payment_session, agentcore_emulator):
            assert agentcore_emulator.available(agentcore_payment_session.payment_session_id)
        """
    )
    absent = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=TIMEOUT)
    absent.assert_outcomes(errors=1)
    absent.stdout.fnmatch_lines(["*fixture 'agentcore_payment_session' not found*"])
    named = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", "-p", "spendguard", timeout=TIMEOUT
    )
    named.assert_outcomes(passed=1)
