"""What every operation handler receives: the shared :class:`Env` and one :class:`Call`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spendguard.emulator._pricing import USDC_DECIMALS
from spendguard.emulator._state import Store


@dataclass(slots=True)
class Env:
    """What handlers share: the state and the asset's decimals."""

    store: Store
    decimals: int = USDC_DECIMALS


@dataclass(frozen=True, slots=True)
class Call:
    """One validated request: its members, the caller's userId ("" for none) and the time."""

    params: dict[str, object]
    user_id: str
    now: float

    @property
    def arn(self) -> str:
        """The paymentManagerArn member."""
        return str(self.params["paymentManagerArn"])

    def token(self, operation: str) -> tuple[str, str, str] | None:
        """Idempotency key for this caller's clientToken, if one was sent."""
        token = self.params.get("clientToken")
        return None if token is None else (operation, self.user_id, str(token))


Handler = Callable[[Env, Call], dict[str, object]]


def once(
    env: Env, call: Call, operation: str, produce: Callable[[], dict[str, object]]
) -> dict[str, object]:
    """Run ``produce`` under the store lock, replaying it for a repeated clientToken."""
    key = call.token(operation)
    if key is not None:
        return env.store.idempotent(key, call.params, produce)
    with env.store.lock:  # without a token (raw HTTP callers) it must still be atomic
        return produce()
