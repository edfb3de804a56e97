"""The default boto3 client of a guard, built as the official ``PaymentManager`` builds its own."""

from __future__ import annotations

from typing import Any

from spendguard._checks import check_text
from spendguard._errors import InvalidArgumentError
from spendguard._session import PaymentSessionClient

__all__ = ["ATTEMPTS", "CONNECT_TIMEOUT", "READ_TIMEOUT", "check_aws_options", "default_client"]

#: Connect and read timeouts of one attempt, and attempts in all: a blocked decision on a
#: slow or unreachable service comes within 5 s (1 s + 1 s, a backoff of at most 1 s, 1 s + 1 s).
CONNECT_TIMEOUT, READ_TIMEOUT, ATTEMPTS = 1.0, 1.0, 2


def default_client(
    region_name: str | None, boto3_session: Any, boto_client_config: Any
) -> PaymentSessionClient:
    import boto3  # noqa: PLC0415 - only when the caller gave no client
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        retries={"mode": "standard", "total_max_attempts": ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
    )
    if boto_client_config is not None:
        config = config.merge(boto_client_config)  # the caller's settings win
    session = boto3_session if boto3_session is not None else boto3.session.Session()
    client: PaymentSessionClient = session.client(
        "bedrock-agentcore", region_name=region_name, config=config
    )
    return client


def check_aws_options(
    client: object, region_name: object, boto3_session: object, boto_client_config: object
) -> None:
    if client is not None and not callable(getattr(client, "get_payment_session", None)):
        raise InvalidArgumentError(
            f"client must have boto3's get_payment_session, got {client!r}", argument="client"
        )
    check_text("region_name", region_name, optional=True)
    if client is not None and (region_name, boto3_session, boto_client_config) != (None,) * 3:
        raise InvalidArgumentError(
            "pass either client or region_name/boto3_session/boto_client_config, not both",
            argument="client",
        )
    if boto3_session is not None and not callable(getattr(boto3_session, "client", None)):
        raise InvalidArgumentError(
            f"boto3_session must be a boto3.session.Session, got {boto3_session!r}",
            argument="boto3_session",
        )
    if boto_client_config is not None and not callable(getattr(boto_client_config, "merge", None)):
        raise InvalidArgumentError(
            f"boto_client_config must be a botocore.config.Config, got {boto_client_config!r}",
            argument="boto_client_config",
        )
