"""``spendguard demo``: a scripted agent spending from a session on an in-process emulator.

Every tool call is priced (:class:`~spendguard.pricing.Pricing`), admitted by the guard
(:func:`~spendguard.pricing.admit` holds its cost), paid through ``ProcessPayment`` and
committed with the server's receipt time; a call that does not fit never runs. At the end
the guard's view of the budget is compared with the server's. Offline, core only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

from spendguard import Hold, InvalidAmountError, Money, SpendGuard
from spendguard.audit import JsonlSink
from spendguard.emulator import EmulatorSession, PaymentsEmulator, x402_payment_input
from spendguard.events import DecisionSink, LoggingSink
from spendguard.pricing import Blocked, Pricing, admit, from_argument

if TYPE_CHECKING:
    from mypy_boto3_bedrock_agentcore import BedrockAgentCoreClient

#: What each tool costs, in USD.
PRICES = Pricing(
    {
        "search_web": "0.05",
        "fetch_article": "0.20",
        "premium_report": "0.50",
        "translate": "0.02",
        "buy_dataset": from_argument("max_price"),
    }
)

#: The agent's plan: (tool, arguments); a list of calls runs concurrently in threads.
SCRIPT: tuple[tuple[str, dict[str, object]] | list[tuple[str, dict[str, object]]], ...] = (
    ("search_web", {"query": "cheapest GPU cloud"}),
    [("fetch_article", {"url": f"https://news.example.com/{n}"}) for n in range(1, 5)],
    ("premium_report", {"topic": "GPU market 2026"}),
    ("translate", {"text": "Bonjour", "to": "en"}),
    ("buy_dataset", {"name": "gpu-prices", "max_price": "0.10"}),
)


@dataclass
class DemoReport:
    """What happened: one line per call, and both views of what is left."""

    lines: list[str] = field(default_factory=list)
    paid: list[Money] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    server_available: Decimal | None = None
    guard_available: Decimal | None = None

    @property
    def agreed(self) -> bool:
        """Whether the guard and the server see the same amount left."""
        return self.server_available is not None and self.server_available == self.guard_available


@dataclass
class _Agent:
    guard: SpendGuard
    client: BedrockAgentCoreClient
    session: EmulatorSession
    out: TextIO
    report: DemoReport
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, step: str, tool: str, arguments: dict[str, object]) -> None:
        admitted = self.admit(tool, arguments)
        if isinstance(admitted, Hold):
            outcome = self.pay(tool, admitted)
            if outcome.startswith("paid"):
                outcome = f"{outcome:<19}  left {self.guard.snapshot().effective_available}"
        else:
            outcome = _not_paid(admitted)
        self.say(f"{step:>4}  {tool:<15} {outcome}")

    def admit(self, tool: str, arguments: dict[str, object]) -> Hold | Blocked | None:
        admitted = admit(self.guard, PRICES, tool, arguments, settlement="session")
        if isinstance(admitted, Blocked):
            with self.lock:
                self.report.blocked.append(tool)
        return admitted

    def pay(self, tool: str, hold: Hold) -> str:
        try:
            receipt = self.client.process_payment(
                paymentManagerArn=self.session.payment_manager_arn,
                paymentSessionId=self.session.payment_session_id,
                userId=self.session.user_id,
                paymentInstrumentId=self.session.payment_instrument_id,
                paymentType="CRYPTO_X402",
                paymentInput=x402_payment_input(hold.amount.amount),  # type: ignore[arg-type]
                clientToken=str(uuid.uuid4()),
            )
        except Exception as exc:
            hold.release()  # the emulator answered: the payment did not happen
            return f"FAILED   payment did not go through: {exc}"
        hold.commit(receipt_time=receipt["updatedAt"])
        with self.lock:
            self.report.paid.append(hold.amount)
        return f"paid     {hold.amount}"

    def say(self, line: str) -> None:
        with self.lock:
            self.report.lines.append(line)
            print(line, file=self.out, flush=True)


def run_demo(
    out: TextIO = sys.stdout, *, budget: str = "1.00", audit: str | os.PathLike[str] | None = None
) -> DemoReport:
    """Run the scripted agent against a fresh in-process emulator.

    Args:
        out: Where to print the play-by-play.
        budget: The session's budget in USD.
        audit: A file to append the guard's decision records to (hash-chained JSON lines,
            see :mod:`spendguard.audit`), for ``spendguard report``.

    Returns:
        The report, including the server's and the guard's final available amounts.
    """
    report = DemoReport()
    sinks: list[DecisionSink] = [LoggingSink()]
    trail = None if audit is None else JsonlSink(audit)
    if trail is not None:
        sinks.append(trail)
    with PaymentsEmulator() as emulator, trail or contextlib.nullcontext():
        session = emulator.create_session(budget, user_id="demo-user", expiry_minutes=60)
        client = emulator.client()
        guard = SpendGuard(
            session.payment_manager_arn,
            session.payment_session_id,
            user_id=session.user_id,
            client=client,
            settlement="session",
            sinks=sinks,
        )
        print(f"spendguard demo: an agent with a {budget} USD budget", file=out)
        print(f"session {session.payment_session_id} on {emulator.endpoint_url}\n", file=out)
        agent = _Agent(guard, client, session, out, report)
        _play(agent)
        guard.refresh()
        report.guard_available = guard.snapshot().effective_available.amount
        report.server_available = emulator.available(session.payment_session_id)
    _summarize(report, out, budget)
    return report


def _not_paid(admitted: Blocked | None) -> str:
    return "free" if admitted is None else f"BLOCKED  {admitted.message}"


def _play(agent: _Agent) -> None:
    for number, step in enumerate(SCRIPT, start=1):
        if isinstance(step, list):
            _play_concurrently(agent, number, step)
        else:
            agent.call(str(number), *step)


def _play_concurrently(
    agent: _Agent, number: int, step: list[tuple[str, dict[str, object]]]
) -> None:
    """Admit every call in its own thread, then pay them all in threads; the lines come out
    in the script's order, so every run prints the same."""
    agent.say(f"{number:>4}  {len(step)} calls at once, each in its own thread:")
    with ThreadPoolExecutor(max_workers=len(step)) as pool:
        admitted = list(pool.map(lambda call: agent.admit(*call), step))
        snap = agent.guard.snapshot()
        agent.say(f"      all admitted: {snap.held} held for calls in flight")
        outcomes = list(
            pool.map(
                lambda pair: (
                    agent.pay(pair[0][0], pair[1])
                    if isinstance(pair[1], Hold)
                    else _not_paid(pair[1])
                ),
                zip(step, admitted, strict=True),
            )
        )
    for index, ((tool, _), outcome) in enumerate(zip(step, outcomes, strict=True)):
        agent.say(f"{number:>3}{'abcdefgh'[index]}  {tool:<15} {outcome}")
    agent.say(f"      left {agent.guard.snapshot().effective_available}")


def _summarize(report: DemoReport, out: TextIO, budget: str) -> None:
    spent = sum((m.amount for m in report.paid), Decimal(0))
    print(
        f"\n{len(report.paid)} calls paid ({spent} USD of {budget}), "
        f"{len(report.blocked)} blocked ({', '.join(report.blocked) or 'none'}).",
        file=out,
    )
    verdict = "they agree" if report.agreed else "THEY DISAGREE"
    print(
        f"Server: {report.server_available} USD left; guard: {report.guard_available} USD "
        f"left; {verdict}.",
        file=out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``spendguard demo``; 0 when the guard and the server agree."""
    parser = argparse.ArgumentParser(prog="spendguard demo")
    parser.add_argument("--budget", default="1.00")
    parser.add_argument("--audit", help="append the decision records (JSONL) to this file")
    args = parser.parse_args(argv)
    try:
        Money.of(args.budget)
    except InvalidAmountError as exc:
        print(f"spendguard demo: --budget {exc}", file=sys.stderr)
        return 2
    report = run_demo(sys.stdout, budget=args.budget, audit=args.audit)
    if args.audit:
        print(f"Audit trail: {args.audit} (see: spendguard report {args.audit})")
    return 0 if report.agreed else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
