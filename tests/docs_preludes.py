"""Preludes for the docs' code blocks: the names a reader fills in, made real and small.

A block chooses its prelude with an HTML comment right before it in the markdown,
``<!-- prelude: NAME [budget=AMOUNT] -->``. A prelude returns the names the block may use and
nothing else: ids of a real session on the local emulator, a scripted chat model (no network,
no API key) and the block's tools as real framework tools. Tools that are paid pay through the
session with ``ProcessPayment``, as the guard's default ``"session"`` settlement assumes.

Code that builds its own boto3 client (``SpendGuard(arn, session_id)`` without ``client=``,
the official SDK) finds the emulator as a reader's code would: through
``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE``, ``AWS_DEFAULT_REGION`` and dummy credentials.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spendguard.emulator import ENDPOINT_ENV_VAR, PaymentsEmulator, x402_payment_input

Namespace = dict[str, Any]


@dataclass
class Context:
    """What a prelude may use: the module's emulator, the test's env and its options."""

    emulator: PaymentsEmulator
    monkeypatch: pytest.MonkeyPatch
    request: pytest.FixtureRequest
    budget: str = "10.00"


def isolate_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No profile, config file or instance role can be used: nothing reaches AWS."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(ENDPOINT_ENV_VAR, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/spendguard-docs-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/spendguard-docs-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def aws_env(ctx: Context) -> Namespace:
    """The environment the docs tell a reader to export for the emulator."""
    ctx.monkeypatch.setenv(ENDPOINT_ENV_VAR, ctx.emulator.endpoint_url)
    ctx.monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    ctx.monkeypatch.setenv("AWS_ACCESS_KEY_ID", "any")
    ctx.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "any")
    return {}


def session(ctx: Context) -> Namespace:
    """``payment_manager_arn``, ``payment_session_id``, ``instrument_id`` of a fresh session
    of ``user-1`` with ``budget`` USD, and ``call_the_paid_api`` (pays 0.005 USD)."""
    names, pay = _session(ctx)
    return {**names, "call_the_paid_api": lambda: pay("0.005")}


def emulator(ctx: Context) -> Namespace:
    """``emulator``: the running :class:`PaymentsEmulator`."""
    return {"emulator": ctx.emulator}


def langchain(ctx: Context) -> Namespace:
    """A session, LangChain tools ``buy_report(ticker)`` (pays 2.50) and ``search(query)``,
    and a chat model that buys the ACME report, then answers."""
    from langchain_core.messages import AIMessage  # noqa: PLC0415 - only blocks that need it
    from langchain_core.tools import tool  # noqa: PLC0415

    names, pay = _session(ctx)

    @tool
    def buy_report(ticker: str) -> str:
        """Buy the market report on `ticker` (2.50 USD)."""
        pay("2.50")
        return f"The {ticker} report: revenue up 12%."

    @tool
    def search(query: str) -> str:
        """Search the web (free)."""
        return f"Results for {query!r}."

    call = {"name": "buy_report", "args": {"ticker": "ACME"}, "id": "call-1", "type": "tool_call"}
    model = _langchain_model([AIMessage("", tool_calls=[call]), AIMessage("Done.")])
    return {**names, "model": model, "buy_report": buy_report, "search": search}


def strands(ctx: Context) -> Namespace:
    """A session, Strands tools ``buy_report(ticker, amount)`` (pays ``amount``) and
    ``search(query)``, and a model that asks for three 4 USD reports in one turn."""
    from strands import tool  # noqa: PLC0415

    names, pay = _session(ctx)

    @tool
    def buy_report(ticker: str, amount: str) -> str:
        """Buy the market report on `ticker`; it costs `amount` USD."""
        pay(amount)
        return f"The {ticker} report: revenue up 12%."

    @tool
    def search(query: str) -> str:
        """Search the web (free)."""
        return f"Results for {query!r}."

    calls = [("buy_report", {"ticker": t, "amount": "4"}) for t in ("ACME", "GLOBEX", "INITECH")]
    model = _strands_model([calls, "Bought what the budget allowed."])
    return {**names, "model": model, "buy_report": buy_report, "search": search}


def openai_agents(ctx: Context) -> Namespace:
    """A session and the SDK's ``ScriptedModel`` buying the ACME report for 4 USD.

    Tracing is switched off, so nothing is exported to OpenAI.
    """
    from agents import set_tracing_disabled  # noqa: PLC0415
    from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: PLC0415

    set_tracing_disabled(True)
    call = function_call("buy_report", {"ticker": "ACME", "amount": "4"}, call_id="call-1")
    model = ScriptedModel([[call], [assistant_message("Bought the ACME report.")]])
    return {**_session(ctx)[0], "model": model}


def agentcore(ctx: Context) -> Namespace:
    """A session, a LangChain chat model and ``fetch(url)``, a tool behind a 402 paywall."""
    from langchain_core.messages import AIMessage  # noqa: PLC0415
    from langchain_core.tools import tool  # noqa: PLC0415

    from spendguard.emulator import x402_challenge  # noqa: PLC0415

    @tool
    def fetch(url: str, headers: dict[str, str] | None = None) -> str:
        """Fetch `url` from a paid API (0.01 USD a call)."""
        if headers and {"X-PAYMENT", "PAYMENT-SIGNATURE"} & {k.upper() for k in headers}:
            return f"The data at {url}."
        return "PAYMENT_REQUIRED: " + json.dumps(x402_challenge("0.01"))

    model = _langchain_model([AIMessage("Nothing to fetch.")])
    return {**_session(ctx)[0], "model": model, "fetch": fetch}


def redis(ctx: Context) -> Namespace:
    """A session, ``ledger``, a ``RedisLedger`` on a throwaway ``redis-server``, and that
    server's ``redis_url``."""
    from spendguard.redis_ledger import RedisLedger  # noqa: PLC0415

    server = ctx.request.getfixturevalue("redis_server")
    ledger = RedisLedger.from_url(server.url)
    return {**_session(ctx)[0], "ledger": ledger, "redis_url": server.url}


def policy_file(ctx: Context) -> Namespace:
    """A session, run in a temporary folder holding ``spendguard.toml``: the TOML block of
    docs/policies.md, so the file the reader writes is the one loaded."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "policies.md").read_text()
    folder = ctx.request.getfixturevalue("tmp_path")
    (folder / "spendguard.toml").write_text(text.split("```toml\n", 1)[1].split("```", 1)[0])
    ctx.monkeypatch.chdir(folder)
    return session(ctx)


PRELUDES: dict[str, Callable[[Context], Namespace]] = {
    "agentcore": agentcore,
    "aws-env": aws_env,
    "emulator": emulator,
    "langchain": langchain,
    "openai-agents": openai_agents,
    "policy-file": policy_file,
    "redis": redis,
    "session": session,
    "strands": strands,
}


def _session(ctx: Context) -> tuple[Namespace, Callable[[str], None]]:
    """A fresh session's ids, and ``pay(amount)``: ProcessPayment through it, as user-1."""
    aws_env(ctx)
    made = ctx.emulator.create_session(ctx.budget, user_id="user-1")
    client = ctx.emulator.client()

    def pay(amount: str) -> None:
        client.process_payment(
            paymentManagerArn=made.payment_manager_arn,
            paymentSessionId=made.payment_session_id,
            userId=made.user_id,
            paymentInstrumentId=made.payment_instrument_id,
            paymentType="CRYPTO_X402",
            paymentInput=x402_payment_input(amount),  # type: ignore[arg-type]
            clientToken=str(uuid.uuid4()),
        )

    names = {
        "payment_manager_arn": made.payment_manager_arn,
        "payment_session_id": made.payment_session_id,
        "instrument_id": made.payment_instrument_id,
    }
    return names, pay


def _langchain_model(responses: Sequence[Any]) -> Any:
    from langchain_core.language_models.fake_chat_models import (  # noqa: PLC0415
        FakeMessagesListChatModel,
    )

    class ScriptedChatModel(FakeMessagesListChatModel):
        """Replays scripted AIMessages; binding tools is a no-op."""

        def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:
            return self

    return ScriptedChatModel(responses=list(responses))


def _strands_model(turns: Sequence[Sequence[tuple[str, dict[str, Any]]] | str]) -> Any:
    from strands_model import ScriptedModel  # noqa: PLC0415 - Strands only when asked

    return ScriptedModel(
        [
            turn
            if isinstance(turn, str)
            else [(f"call-{n}", name, tool_input) for n, (name, tool_input) in enumerate(turn, 1)]
            for turn in turns
        ]
    )
