"""The ``spendguard`` console script: ``session show``, ``emulator`` and ``demo``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable

import boto3
import pytest
from conftest import PaymentSessionFixture

from spendguard.cli import main


@pytest.fixture
def dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    _isolate_aws(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "emulator")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator")


def _isolate_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/spendguard-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/spendguard-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _show(session: PaymentSessionFixture, *extra: str, user: str | None = None) -> list[str]:
    return [
        "session",
        "show",
        "--endpoint-url",
        session.emulator.endpoint_url,
        "--payment-manager-arn",
        session.arn,
        "--session-id",
        session.session_id,
        "--user-id",
        user or session.user_id,
        *extra,
    ]


@pytest.mark.usefixtures("dummy_credentials")
def test_session_show_prints_limit_available_and_expiry(
    payment_session: PaymentSessionFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    payment_session.emulator.spend(payment_session.session_id, "0.50")
    assert main(_show(payment_session)) == 0
    out = capsys.readouterr().out
    assert payment_session.session_id in out
    assert "limit        10.00 USD" in out
    assert "available    9.50 USD (server)" in out
    assert "60 min left" in out or "59 min left" in out


@pytest.mark.usefixtures("dummy_credentials")
def test_session_show_json_is_machine_readable(
    payment_session: PaymentSessionFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    payment_session.emulator.spend(payment_session.session_id, "1.25")
    assert main(_show(payment_session, "--json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["max_spend"] == "10.00"
    assert data["server_available"] == "8.75"
    assert data["effective_available"] == "8.75"
    assert data["expired"] is False
    assert data["session_id"] == payment_session.session_id


@pytest.mark.usefixtures("dummy_credentials")
def test_session_show_access_denied(
    payment_session: PaymentSessionFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_show(payment_session, user="mallory")) == 3
    err = capsys.readouterr().err
    assert "Access denied" in err
    assert "mallory" in err


@pytest.mark.usefixtures("dummy_credentials")
def test_session_show_not_found(
    payment_session: PaymentSessionFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _show(payment_session, "--json")
    args[args.index(payment_session.session_id)] = "payment-session-000000000000000"
    assert main(args) == 4
    assert "not found" in json.loads(capsys.readouterr().out)["error"]


@pytest.mark.usefixtures("dummy_credentials")
def test_session_show_expired(
    new_payment_session: Callable[..., PaymentSessionFixture],
    capsys: pytest.CaptureFixture[str],
) -> None:
    session = new_payment_session("1.00", expiry_minutes=15)
    session.emulator.advance(16 * 60)
    assert main(_show(session)) == 5
    out = capsys.readouterr().out
    assert "EXPIRED" in out
    assert "has expired" in out


@pytest.mark.usefixtures("dummy_credentials")
def test_session_show_unreachable_endpoint(
    payment_session: PaymentSessionFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _show(payment_session)
    args[args.index(payment_session.emulator.endpoint_url)] = "http://127.0.0.1:1"
    assert main(args) == 6
    assert "Could not reach http://127.0.0.1:1" in capsys.readouterr().err


def test_session_show_without_credentials(
    payment_session: PaymentSessionFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _isolate_aws(monkeypatch)
    # Against the local emulator no credentials are needed...
    assert main(_show(payment_session)) == 0
    # ...against anything else they are (signing fails before any connection is made).
    args = _show(payment_session)
    args[args.index(payment_session.emulator.endpoint_url)] = "http://spendguard.invalid"
    assert main(args) == 3
    assert "No AWS credentials found" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["session", "show", "--session-id", "x"])
    assert info.value.code == 2
    assert "--payment-manager-arn" in capsys.readouterr().err


def test_emulator_command_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spendguard.cli",
            "emulator",
            "--port",
            "0",
            "--create-session",
            "2.00",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        text = "".join(lines)
        export = next(
            line for line in lines if "export AWS_ENDPOINT_URL_BEDROCK_AGENTCORE=" in line
        )
        url = export.split("=", 1)[1].strip()
        session_id = next(word for word in text.split() if word.startswith("payment-session-"))
        client = boto3.client(
            "bedrock-agentcore",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="y",
        )
        got = client.get_payment_session(
            paymentManagerArn=text.split("--payment-manager-arn ")[1].split()[0],
            paymentSessionId=session_id,
            userId="user-1",
        )
        assert got["paymentSession"]["limits"]["maxSpendAmount"]["value"] == "2.00"
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "stopped" in out


def test_demo_command_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    assert "they agree" in capsys.readouterr().out


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import spendguard  # noqa: PLC0415

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"spendguard {spendguard.__version__}"


def _one_line(err: str) -> str:
    """The error, one line (a slow call may also have said it was waiting)."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "waiting for" not in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.usefixtures("dummy_credentials")
def test_an_unknown_profile_exits_3_in_one_line(
    payment_session: PaymentSessionFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_show(payment_session, "--profile", "no-such-profile")) == 3
    assert "profile" in _one_line(capsys.readouterr().err)


@pytest.mark.usefixtures("dummy_credentials")
@pytest.mark.parametrize(
    ("code", "exit_code", "words"),
    [
        ("ThrottlingException", 6, "throttling"),
        ("UnrecognizedClientException", 3, "credentials were rejected"),
        ("ExpiredTokenException", 3, "credentials were rejected"),
        ("AccessDeniedException", 3, "IAM"),
    ],
)
def test_service_errors_exit_with_their_code_in_one_line(
    payment_session: PaymentSessionFixture,
    capsys: pytest.CaptureFixture[str],
    code: str,
    exit_code: int,
    words: str,
) -> None:
    payment_session.emulator.faults.fail("GetPaymentSession", code, times=5)
    assert main(_show(payment_session)) == exit_code
    assert words in _one_line(capsys.readouterr().err)


@pytest.mark.usefixtures("dummy_credentials")
def test_a_slow_call_shows_that_it_is_waiting(
    payment_session: PaymentSessionFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    payment_session.emulator.faults.delay("GetPaymentSession", 1.5)
    assert main(_show(payment_session)) == 0
    assert "waiting for" in capsys.readouterr().err


def test_a_taken_port_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    import socket  # noqa: PLC0415

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["emulator", "--port", str(port)]) == 1
    err = _one_line(capsys.readouterr().err)
    assert str(port) in err


def test_a_bad_budget_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["emulator", "--create-session", "abc"], ["demo", "--budget", "-1"]):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "not a budget" in err
        assert "Traceback" not in err
