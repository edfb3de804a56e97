"""The guard on its own: reserve, the decorator, and a blocked charge, against the local emulator.

Run: ``uv run python examples/guard_quickstart.py`` (offline, no AWS account).
"""

from __future__ import annotations

from spendguard import BudgetExceededError, SpendGuard
from spendguard.emulator import PaymentsEmulator


def main() -> None:
    with PaymentsEmulator() as emulator:
        session = emulator.create_session(budget="0.05", user_id="user-1")
        guard = SpendGuard(
            session.payment_manager_arn,
            session.payment_session_id,
            user_id="user-1",
            client=emulator.client(),
        )

        @guard.charges("0.02")
        def premium_search(query: str) -> str:
            return f"results for {query!r}"

        with guard.reserve("0.005"):  # an x402 micro-payment: half a cent, exact
            print("paid 0.005 for one data point")
        print(premium_search("solar panels"))
        print(premium_search("heat pumps"))
        try:
            premium_search("wind turbines")
        except BudgetExceededError as err:
            print(f"blocked: {err}")
        snap = guard.snapshot()
        print(f"left: {snap.effective_available} of {snap.max_spend}")


if __name__ == "__main__":
    main()
