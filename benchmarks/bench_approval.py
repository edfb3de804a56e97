"""What approval and the AgentCore pre-sign checks cost per decision (no assertions).

Run: ``uv run python benchmarks/bench_approval.py``

Approval (in-memory ledger): the median time of one ``reserve -> commit`` through the guard,
then through ``Approvals.reserve`` below its threshold (nobody asked), then above it with an
approver that answers yes at once (so the figure is spendguard's own work: the request's
digest, the hold with its approval lease, the answer), and the same with an async approver
through ``Approvals.areserve`` (each call also pays one event loop run, ``run_until_complete``).

Pre-sign policy: the median time of pricing one x402 v2 challenge (no guard), without
allowlists, with all three allowlists configured, and with a v1 body to compare with the
header; each challenge offers four options.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from spendguard import SpendGuard
from spendguard.approval import ApprovalRequest, Approvals
from spendguard_agentcore import SpendGuardPreSignPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import ARN, SID, ScriptedClient, Session  # type: ignore[import-not-found]

ROUNDS = 7
CYCLES = 2000
USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"


def guard() -> SpendGuard:
    now = datetime.now(timezone.utc)
    session = Session(
        max_spend="999999",
        available="999999",
        created_at=now - timedelta(minutes=1),
        updated_at=now - timedelta(minutes=1),
        expiry_minutes=24 * 60,
    )
    return SpendGuard(ARN, SID, client=ScriptedClient(session), settlement="external")


def yes(request: ApprovalRequest) -> bool:
    return True


async def ayes(request: ApprovalRequest) -> bool:
    return True


def median_us(run: Callable[[], object], cycles: int = CYCLES) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(cycles):
            run()
        times.append((time.perf_counter() - start) / cycles * 1e6)
    return statistics.median(times)


def approval_rows() -> dict[str, float]:
    plain, below, above, async_above = guard(), guard(), guard(), guard()
    approvals = Approvals(above="1.00", approver=yes)
    async_approvals = Approvals(above="1.00", approver=ayes)
    args = {"ticker": "ACME", "pages": 3}
    loop = asyncio.new_event_loop()

    async def one_async() -> None:
        hold = await async_approvals.areserve(async_above, "2.00", tool="buy", arguments=args)
        hold.commit()

    rows = {
        "guard.reserve": lambda: plain.reserve("2.00", tool="buy").commit(),
        "Approvals.reserve, below": lambda: approvals.reserve(
            below, "0.50", tool="buy", arguments=args
        ).commit(),
        "Approvals.reserve, approved": lambda: approvals.reserve(
            above, "2.00", tool="buy", arguments=args
        ).commit(),
        "Approvals.areserve, approved": lambda: loop.run_until_complete(one_async()),
    }
    try:
        return {name: median_us(run) for name, run in rows.items()}
    finally:
        loop.close()


def challenge(body: bool) -> dict[str, Any]:
    accepts = [
        {
            "scheme": "exact",
            "network": "eip155:8453",
            "asset": USDC,
            "payTo": PAY_TO,
            "amount": str(1000 * (i + 1)),
        }
        for i in range(4)
    ]
    payload = {
        "x402Version": 2,
        "resource": {"url": "https://api.example.com/x"},
        "accepts": accepts,
    }
    header = base64.b64encode(json.dumps(payload).encode()).decode()
    v1 = [{**a, "network": "base", "maxAmountRequired": a["amount"]} for a in accepts]
    return {
        "statusCode": 402,
        "headers": {"PAYMENT-REQUIRED": header},
        "body": {"x402Version": 1, "accepts": v1} if body else {},
    }


def presign_rows() -> dict[str, float]:
    open_policy = SpendGuardPreSignPolicy(guard())
    listed = SpendGuardPreSignPolicy(
        guard(),
        networks={"base", "eip155:8453"},
        pay_to={PAY_TO},
        origins={"https://api.example.com"},
    )
    header_only, both = challenge(body=False), challenge(body=True)
    return {
        "price, no allowlists": median_us(lambda: open_policy.price(header_only)),
        "price, three allowlists": median_us(lambda: listed.price(header_only)),
        "price, allowlists + v1/v2 check": median_us(lambda: listed.price(both)),
    }


def main() -> None:
    """Print the figures."""
    print(f"median us per decision ({ROUNDS} rounds of {CYCLES})")
    print("\napproval, in-memory ledger (reserve -> commit)")
    rows = approval_rows()
    base = rows["guard.reserve"]
    for name, us in rows.items():
        print(f"  {name:<32} {us:8.1f} us  +{us - base:7.1f} us")
    print("\nAgentCore pre-sign policy, 4 options (pricing only, no hold)")
    for name, us in presign_rows().items():
        print(f"  {name:<32} {us:8.1f} us")


if __name__ == "__main__":
    main()
