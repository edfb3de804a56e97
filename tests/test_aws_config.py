"""The default boto3 client: region, profiles and client config as the official SDK takes them,
and failures of a missing or broken AWS set-up as clear SpendGuardErrors."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from conftest import PaymentSessionFixture
from support import ARN, SID

from spendguard import (
    InvalidArgumentError,
    Money,
    SessionConfigurationError,
    SessionUnavailableError,
    SpendGuard,
)

ENDPOINT_ENV = "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE"


@pytest.fixture
def clean_aws_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        ENDPOINT_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/spendguard-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/spendguard-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def dummy_session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")


def test_region_session_and_config_reach_the_default_client(
    clean_aws_env: pytest.MonkeyPatch, payment_session: PaymentSessionFixture
) -> None:
    clean_aws_env.setenv(ENDPOINT_ENV, payment_session.emulator.endpoint_url)
    s = payment_session
    guard = SpendGuard(
        s.arn,
        s.session_id,
        user_id=s.user_id,
        region_name="eu-west-1",
        boto3_session=dummy_session(),
        boto_client_config=Config(user_agent_extra="my-agent/1.0"),
    )
    assert guard.snapshot().server_available == Money.of("10.00")


def test_a_profile_comes_from_the_boto3_session(
    clean_aws_env: pytest.MonkeyPatch, payment_session: PaymentSessionFixture, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[profile payments]\nregion = us-east-1\n"
        "aws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    clean_aws_env.setenv("AWS_CONFIG_FILE", str(config))
    clean_aws_env.setenv(ENDPOINT_ENV, payment_session.emulator.endpoint_url)
    s = payment_session
    session = boto3.session.Session(profile_name="payments")
    guard = SpendGuard(s.arn, s.session_id, user_id=s.user_id, boto3_session=session)
    assert guard.check("1.00").allowed


@pytest.mark.parametrize(
    ("setup", "cause"),
    [
        ("no region", "NoRegionError"),
        ("no credentials", "NoCredentialsError"),
        ("unknown profile", "ProfileNotFound"),
        ("unreachable endpoint", "EndpointConnectionError"),
    ],
)
def test_a_missing_set_up_is_a_configuration_error(
    clean_aws_env: pytest.MonkeyPatch, setup: str, cause: str
) -> None:
    kwargs: dict[str, object] = {"region_name": "us-east-1", "boto3_session": dummy_session()}
    if setup == "no region":
        kwargs.pop("region_name")
    elif setup == "no credentials":
        kwargs.pop("boto3_session")
    elif setup == "unknown profile":
        clean_aws_env.setenv("AWS_PROFILE", "no-such-profile")
        kwargs.pop("boto3_session")
    else:
        clean_aws_env.setenv(ENDPOINT_ENV, "http://127.0.0.1:9")
    guard = SpendGuard(ARN, SID, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(SessionConfigurationError) as info:
        guard.check("0.01")
    assert type(info.value.__cause__).__name__ == cause
    assert "127.0.0.1" not in info.value.model_message
    assert "Do not retry" in info.value.model_message


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_slow_endpoint_is_unavailable_not_a_hang(
    clean_aws_env: pytest.MonkeyPatch, silent_endpoint: str
) -> None:
    clean_aws_env.setenv(ENDPOINT_ENV, silent_endpoint)
    guard = SpendGuard(ARN, SID, region_name="us-east-1", boto3_session=dummy_session())
    with pytest.raises(SessionUnavailableError) as info:
        guard.check("0.01")
    assert type(info.value.__cause__).__name__ == "ReadTimeoutError"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"region_name": ""},
        {"boto3_session": "default"},
        {"boto_client_config": {"read_timeout": 1}},
        {"client": object(), "region_name": "us-east-1"},
    ],
)
def test_bad_aws_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        SpendGuard(ARN, SID, **kwargs)  # type: ignore[arg-type]
