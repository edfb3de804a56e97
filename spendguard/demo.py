"""``spendguard demo``: a scripted agent spending from a session on an in-process emulator.

Every tool call is priced (:class:`~spendguard.pricing.Pricing`), admitted by the guard
(:func:`~spendguard.pricing.admit` holds its cost), paid through ``ProcessPayment`` and
committed with the server's receipt time; a call that does not fit never runs. At the end
the guard's view of the budget is compared with the server's. Offline, core only.
"""

from __future__ import annotations

import argparse
import sys
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

from spendguard import Hold, Money, SpendGuard
from spendguard.emulator import EmulatorSession, PaymentsEmulator, x402_payment_input
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
        admitted = admit(self.guard, PRICES, tool, arguments, settlement="session")
        if isinstance(admitted, Blocked):
            self.say(f"{step:>4}  {tool:<15} BLOCKED  {admitted.message}")
            with self.lock:
                self.report.blocked.append(tool)
            return
        if admitted is None:
            self.say(f"{step:>4}  {tool:<15} free")
            return
        self._pay(step, tool, admitted)

    def _pay(self, step: str, tool: str, hold: Hold) -> None:
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
            hold.release()
            self.say(f"{step:>4}  {tool:<15} FAILED   payment did not go through: {exc}")
            return
        hold.commit(receipt_time=receipt["updatedAt"])
        snap = self.guard.snapshot()
        in_flight = f" ({snap.held} held for calls in flight)" if snap.held.amount else ""
        left = f"left {snap.effective_available}{in_flight}"
        self.say(f"{step:>4}  {tool:<15} paid     {hold.amount!s:<10} {left}")
        with self.lock:
            self.report.paid.append(hold.amount)

    def say(self, line: str) -> None:
        with self.lock:
            self.report.lines.append(line)
            print(line, file=self.out, flush=True)


def run_demo(out: TextIO = sys.stdout, *, budget: str = "1.00") -> DemoReport:
    """Run the scripted agent against a fresh in-process emulator.

    Args:
        out: Where to print the play-by-play.
        budget: The session's budget in USD.

    Returns:
        The report, including the server's and the guard's final available amounts.
    """
    report = DemoReport()
    with PaymentsEmulator() as emulator:
        session = emulator.create_session(budget, user_id="demo-user", expiry_minutes=60)
        client = emulator.client()
        guard = SpendGuard(
            session.payment_manager_arn,
            session.payment_session_id,
            user_id=session.user_id,
            client=client,
            settlement="session",
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


def _play(agent: _Agent) -> None:
    for number, step in enumerate(SCRIPT, start=1):
        if isinstance(step, list):
            agent.say(f"{number:>4}  {len(step)} calls at once, each in its own thread:")
            with ThreadPoolExecutor(max_workers=len(step)) as pool:
                calls = [
                    pool.submit(agent.call, f"{number}{'abcdefgh'[index]}", tool, arguments)
                    for index, (tool, arguments) in enumerate(step)
                ]
            for call in calls:
                call.result()  # surface a failure in a thread
        else:
            agent.call(str(number), *step)


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
    args = parser.parse_args(argv)
    report = run_demo(sys.stdout, budget=args.budget)
    return 0 if report.agreed else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
