"""An agent on a broken AWS set-up: every call is blocked fast, the run goes on.

Five set-ups that trip up a first deployment: no region, no credentials, a profile that does
not exist, an endpoint nobody listens on, and an endpoint that accepts the connection and never
answers. In each, a LangChain agent (a scripted model, no network) asks for one paid tool call;
spendguard cannot read the payment session, so the call is blocked with a clean message for
the model, the agent finishes its run, and the operator's log line says what is wrong.

    uv run python examples/aws_failures.py
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from spendguard import SpendGuard
from spendguard_langchain import SpendLimitMiddleware

ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:payment-manager/pm-example-0123456789"
SESSION = "payment-session-abcdefghijklmno"
ENDPOINT = "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE"


class ScriptedModel(FakeMessagesListChatModel):
    """Asks for one report, then answers; a real chat model goes here."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self


@tool
def buy_report(ticker: str) -> str:
    """Buy the market report on `ticker` (1.00 USD)."""
    return f"The {ticker} report."


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """A local TCP server that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop, held = threading.Event(), []

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def dummy_session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="example", aws_secret_access_key="example")


def guard_for(case: str, silent: str) -> SpendGuard:
    os.environ.pop(ENDPOINT, None)
    os.environ.pop("AWS_PROFILE", None)
    if case == "no region":
        return SpendGuard(ARN, SESSION, boto3_session=dummy_session())
    if case == "no credentials":
        return SpendGuard(ARN, SESSION, region_name="us-east-1")
    if case == "a bad profile":
        os.environ["AWS_PROFILE"] = "no-such-profile"
        return SpendGuard(ARN, SESSION, region_name="us-east-1")
    os.environ[ENDPOINT] = "http://127.0.0.1:9" if case == "an unreachable endpoint" else silent
    return SpendGuard(ARN, SESSION, region_name="us-east-1", boto3_session=dummy_session())


def run(case: str, silent: str) -> None:
    guard = guard_for(case, silent)
    model = ScriptedModel(
        responses=[
            AIMessage(
                "", tool_calls=[{"name": "buy_report", "args": {"ticker": "ACME"}, "id": "1"}]
            ),
            AIMessage("I could not buy the report right now."),
        ]
    )
    middleware = SpendLimitMiddleware(guard, pricing={"buy_report": "1.00"})
    agent = create_agent(model, tools=[buy_report], middleware=[middleware])
    start = time.monotonic()
    result = agent.invoke({"messages": [HumanMessage("Buy the ACME report")]})
    elapsed = time.monotonic() - start
    seen = [m.content for m in result["messages"] if isinstance(m, ToolMessage)]
    print(f"{case} ({elapsed:.1f} s): the tool call was blocked; the model saw: {seen[0]}")
    print(f"  and the agent finished: {result['messages'][-1].content!r}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="  operator log: %(message)s")
    for noisy in ("botocore", "urllib3", "httpx", "langchain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as empty:
        # An empty AWS configuration: no region, no credentials, no profiles.
        os.environ["AWS_CONFIG_FILE"] = os.path.join(empty, "config")
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(empty, "credentials")
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID"):
            os.environ.pop(name, None)
        with silent_endpoint() as silent:
            for case in (
                "no region",
                "no credentials",
                "a bad profile",
                "an unreachable endpoint",
                "a slow endpoint",
            ):
                run(case, silent)


if __name__ == "__main__":
    main()
