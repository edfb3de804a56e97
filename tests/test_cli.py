"""The ``spendguard`` console script: ``session show``, ``emulator`` and ``demo``."""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from conftest import PaymentSessionFixture

from spendguard.cli import main
from spendguard.emulator import DEFAULT_MANAGER_ARN, ENDPOINT_ENV_VAR

if TYPE_CHECKING:
    from mypy_boto3_bedrock_agentcore import BedrockAgentCoreClient


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


@contextmanager
def _emulator_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``spendguard emulator --port 0 ARGS`` in a subprocess, and its banner once it serves."""
    process = subprocess.Popen(
        [sys.executable, "-m", "spendguard.cli", "emulator", "--port", "0", *args],
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
        yield process, "".join(lines)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)


def _url(banner: str) -> str:
    export = next(line for line in banner.splitlines() if f"export {ENDPOINT_ENV_VAR}=" in line)
    return export.split("=", 1)[1].strip()


def _boto3(url: str) -> BedrockAgentCoreClient:
    return boto3.client(
        "bedrock-agentcore",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )


def test_emulator_command_serves_until_terminated() -> None:
    with _emulator_process("--create-session", "2.00") as (process, banner):
        session_id = next(word for word in banner.split() if word.startswith("payment-session-"))
        got = _boto3(_url(banner)).get_payment_session(
            paymentManagerArn=banner.split("--payment-manager-arn ")[1].split()[0],
            paymentSessionId=session_id,
            userId="user-1",
        )
        assert got["paymentSession"]["limits"]["maxSpendAmount"]["value"] == "2.00"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "stopped" in out
    assert "Traceback" not in err


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0() -> None:
    with _emulator_process("--create-session", "2.00") as (process, banner):
        session_id = next(word for word in banner.split() if word.startswith("payment-session-"))
        arn = banner.split("--payment-manager-arn ")[1].split()[0]
        body = json.dumps({"paymentManagerArn": arn, "paymentSessionId": session_id})
        request = (
            "POST /payments/getPaymentSession HTTP/1.1\r\nHost: x\r\n"
            "X-Amzn-Bedrock-AgentCore-Payments-User-Id: user-1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        ).encode()
        host, port = _url(banner).removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request[:-10])  # the request has begun when SIGTERM comes
            process.send_signal(signal.SIGTERM)
            assert process.stdout is not None
            assert process.stdout.readline().startswith("spendguard emulator: stopping")
            sock.sendall(request[-10:])
            reply = sock.makefile("rb").read()  # the answer, then the server closes
        out, err = process.communicate(timeout=10)
    assert reply.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" in reply
    assert session_id.encode() in reply
    assert process.returncode == 0
    assert "stopped" in out
    assert "Traceback" not in err


SEED = {
    "sessions": [
        {"user_id": "alice", "budget": "12.50", "expiry_minutes": 30},
        {"user_id": "bob", "network": "SOLANA"},
    ],
    "instruments": [{"user_id": "carol"}],
}
SEED_TOML = """
[[sessions]]
user_id = "alice"
budget = "12.50"
expiry_minutes = 30

[[sessions]]
user_id = "bob"
network = "SOLANA"

[[instruments]]
user_id = "carol"
"""


def _toml_readable() -> bool:
    return sys.version_info >= (3, 11) or importlib.util.find_spec("tomli") is not None


@pytest.mark.parametrize(
    "name",
    [
        "seed.json",
        pytest.param(
            "seed.toml",
            marks=pytest.mark.skipif(not _toml_readable(), reason="no tomllib or tomli"),
        ),
    ],
)
def test_emulator_seed_file_starts_it_with_those_sessions_and_wallets(
    tmp_path: Path, name: str
) -> None:
    seed = tmp_path / name
    seed.write_text(json.dumps(SEED) if name.endswith(".json") else SEED_TOML)
    with _emulator_process("--seed", str(seed)) as (_, banner):
        client = _boto3(_url(banner))
        sessions = re.findall(r"session (payment-session-\S+) of (\w+)", banner)
        assert [user for _, user in sessions] == ["alice", "bob"]
        alice = client.get_payment_session(
            paymentManagerArn=DEFAULT_MANAGER_ARN, paymentSessionId=sessions[0][0], userId="alice"
        )["paymentSession"]
        assert alice["limits"]["maxSpendAmount"]["value"] == "12.50"
        assert alice["expiryTimeInMinutes"] == 30
        wallets = {
            user: client.list_payment_instruments(
                paymentManagerArn=DEFAULT_MANAGER_ARN, userId=user
            )["paymentInstruments"]
            for user in ("alice", "bob", "carol")
        }
    assert [len(found) for found in wallets.values()] == [1, 1, 1]
    assert "of carol: ETHEREUM wallet" in banner


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ('{"sessions": [{"budget": "ten"}]}', "sessions[0].budget"),
        ('{"sessions": [{}, {"expiry_minutes": 5}]}', "sessions[1].expiry_minutes"),
        ('{"sessions": [{"budgett": "1.00"}]}', "sessions[0].budgett"),
        ('{"instruments": [{"network": "BITCOIN"}]}', "instruments[0].network"),
        ('{"instruments": [{"payment_manager_arn": "arn:x"}]}', "payment_manager_arn"),
        ('{"sessions": {"user_id": "a"}}', "sessions"),
        ('{"wallets": []}', "'wallets'"),
        ("{not json", "not valid JSON"),
    ],
)
def test_emulator_seed_errors_name_the_key_in_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, key: str
) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(content)
    assert main(["emulator", "--port", "0", "--seed", str(seed)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert key in err
    assert str(seed) in err


def test_emulator_seed_that_cannot_be_read_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["emulator", "--seed", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read it" in _one_line(capsys.readouterr().err)


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="tomllib is in the standard library")
def test_emulator_toml_seed_without_tomli_on_3_10_says_how_to_read_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tomli", None)  # as if it were not installed
    seed = tmp_path / "seed.toml"
    seed.write_text(SEED_TOML)
    assert main(["emulator", "--seed", str(seed)]) == 2
    assert "tomli" in _one_line(capsys.readouterr().err)


@pytest.mark.skipif(not _toml_readable(), reason="no tomllib or tomli")
def test_the_seed_file_in_the_docs_is_accepted(tmp_path: Path) -> None:
    from spendguard.emulator._seed import read_seed  # noqa: PLC0415

    docs = Path(__file__).resolve().parent.parent / "docs" / "emulator.md"
    [block] = re.findall(r"```toml\n(.*?)```", docs.read_text(encoding="utf-8"), re.S)
    seed = tmp_path / "seed.toml"
    seed.write_text(block)
    read = read_seed(seed)
    assert (len(read.sessions), len(read.instruments)) == (1, 1)
    assert read.instruments[0].network == "SOLANA"


def test_emulator_print_env_prints_exports_a_shell_can_eval() -> None:
    command = f'eval "$({sys.executable} -m spendguard.cli emulator --print-env --port 8799)"'
    script = f'{command} && echo "$AWS_ENDPOINT_URL_BEDROCK_AGENTCORE $AWS_DEFAULT_REGION"'
    done = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["http://127.0.0.1:8799", "us-east-1"]


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8787"),
        ("0.0.0.0", "http://127.0.0.1:8787"),
        ("::1", "'http://[::1]:8787'"),  # quoted: brackets are shell glob characters
    ],
)
def test_emulator_print_env_sets_endpoint_region_and_dummy_credentials(
    capsys: pytest.CaptureFixture[str], host: str, url: str
) -> None:
    assert main(["emulator", "--print-env", "--host", host]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"export AWS_ENDPOINT_URL_BEDROCK_AGENTCORE={url}",
        "export AWS_DEFAULT_REGION=us-east-1",
        "export AWS_ACCESS_KEY_ID=emulator",
        "export AWS_SECRET_ACCESS_KEY=emulator",
    ]


def test_emulator_print_env_needs_the_port_it_will_use(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["emulator", "--print-env", "--port", "0"]) == 2
    assert "--port" in _one_line(capsys.readouterr().err)


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
