"""A ``pre_sign_policy`` for the AgentCore payments SDK that spends through a SpendGuard."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Mapping

from spendguard import InvalidArgumentError, Money, Settlement, SpendGuard, SpendGuardError
from spendguard.gate import OnBlocked
from spendguard.pricing import Blocked
from spendguard_agentcore._allowlist import Allowlists
from spendguard_agentcore._challenge import (
    USDC_ASSETS,
    PaymentOption,
    normalize_assets,
    payment_options,
)

__all__ = ["SpendGuardPreSignPolicy"]

logger = logging.getLogger("spendguard.agentcore")

_POLICY = "pre_sign_policy"
_KEEP_SIGNED = 1000


class SpendGuardPreSignPolicy:
    """``pre_sign_policy`` for ``AgentCorePaymentsPluginConfig`` (Strands plugin and LangGraph
    middleware): sign a 402 payment only if the payment session can afford it.

    Called with the SDK's payment request, it prices every option the SDK might pay (x402 v1
    body dict or JSON string, x402 v2 ``Payment-Required`` header, MPP ``WWW-Authenticate:
    Payment`` challenges), takes the most expensive (the SDK picks the option after the policy
    answers), and reserves it in the guard. It returns ``True`` only if the reservation
    succeeded; an unknown asset, an unreadable challenge or a budget that does not fit returns
    ``False``, which the SDK turns into a ``PaymentError`` the model sees.

    Allowlists (``assets`` always; ``networks``, ``pay_to`` and ``origins`` once given) deny by
    default: every option the SDK might pay must be on each of them, since the SDK picks the
    option after the policy answers. A challenge whose x402 v1 body and v2 header both offer
    the same option (scheme and asset) with a different amount or recipient is refused too.
    Each refusal carries a rule (``"allowlist_network"``, ``"challenge_mismatch"``, ...) on the
    error given to ``on_blocked`` and in the log record.

    Amounts are scaled by the decimals in ``assets`` and nothing else. An MPP challenge may
    carry its own ``decimals``; if they differ from the allowlist's, the challenge is blocked
    rather than priced, because the service may charge by the challenge's figure (the local
    emulator does) and a hold by the allowlist's would then be too small.

    The SDK gives no hook after signing: ``generate_payment_header`` calls ProcessPayment on the
    same session right after the policy, and nothing reports back whether it went through. So the
    hold is committed as soon as the policy allows (signing means money may move), by default
    as a ``"session"`` charge, which the guard stops counting once the session shows it. If the
    SDK then pays a cheaper option, the difference stays counted: the budget errs on the safe
    side.

    Args:
        guard: The guard of the payment session in ``AgentCorePaymentsPluginConfig``.
        assets: Asset identifier (EVM token address, SPL mint, MPP currency) -> decimals of
            the assets the agent may pay with, each worth one US dollar per unit. Default
            (``USDC_ASSETS``): USDC on Base, Ethereum, Arbitrum One, Optimism and Solana, plus
            Base Sepolia, Ethereum Sepolia and Solana devnet.
        networks: Networks the agent may pay on, see :class:`Allowlists`; None: any.
        pay_to: Recipients the agent may pay, see :class:`Allowlists`; None: any.
        origins: Resource origins the agent may pay for, see :class:`Allowlists`; None: any.
        settlement: How the charge settles; ``"session"`` because ProcessPayment runs through
            the same payment session.
        on_blocked: Called with every refusal (for logging or metrics).

    Raises:
        InvalidArgumentError: An allowlist, ``settlement`` or ``on_blocked`` is invalid.

    Attributes:
        allowlists: The networks, recipients and origins allowed.
    """

    def __init__(
        self,
        guard: SpendGuard,
        *,
        assets: Mapping[str, int] = USDC_ASSETS,
        networks: Iterable[str] | None = None,
        pay_to: Iterable[str] | None = None,
        origins: Iterable[str] | None = None,
        settlement: Settlement = "session",
        on_blocked: OnBlocked | None = None,
    ) -> None:
        if settlement not in ("session", "external"):
            raise InvalidArgumentError(
                f"settlement must be 'session' or 'external', got {settlement!r}",
                argument="settlement",
            )
        if on_blocked is not None and not callable(on_blocked):
            raise InvalidArgumentError(
                f"on_blocked must be callable, got {on_blocked!r}", argument="on_blocked"
            )
        self._guard = guard
        self._assets = normalize_assets(assets)
        self.allowlists = Allowlists(networks=networks, pay_to=pay_to, origins=origins)
        self._settlement: Settlement = settlement
        self._on_blocked = on_blocked
        self._lock = threading.Lock()
        self._signed: deque[Money] = deque(maxlen=_KEEP_SIGNED)

    @property
    def signed(self) -> list[Money]:
        """The last 1,000 amounts this policy allowed and charged, oldest first (a copy)."""
        with self._lock:
            return list(self._signed)

    def price(self, payment_required_request: object) -> Money:
        """What the policy would charge for a request: its most expensive payable option.

        Args:
            payment_required_request: The dict the SDK passes to ``pre_sign_policy``.

        Returns:
            The price in US dollars.

        Raises:
            ChallengeError: The request offers no option that can be priced, an option is
                not allowed, or its x402 body and header disagree.
        """
        options: list[PaymentOption] = payment_options(payment_required_request, self._assets)
        self.allowlists.check(options)
        return max(option.price for option in options)

    def __call__(self, payment_required_request: object) -> bool:
        """Decide whether the SDK may sign this payment.

        Args:
            payment_required_request: ``{"statusCode": 402, "headers": ..., "body": ...}``.

        Returns:
            ``True`` if the price was reserved and charged, else ``False``.
        """
        try:
            amount = self.price(payment_required_request)
        except SpendGuardError as error:
            self._guard._record_blocked(_POLICY, error)  # the guard records its own refusals
            self._refuse(error)
            return False
        try:
            self._guard.reserve(amount, settlement=self._settlement, tool=_POLICY).commit()
        except SpendGuardError as error:
            self._refuse(error)
            return False
        with self._lock:
            self._signed.append(amount)
        return True

    def _refuse(self, error: SpendGuardError) -> None:
        logger.info(
            "pre_sign_policy blocked a payment: %s",
            error,
            extra={
                "spendguard_event": "blocked",
                "spendguard_tool": _POLICY,
                "spendguard_reason": type(error).__name__,
                "spendguard_rule": error.rule,
                "spendguard_session_id": error.session_id,
            },
        )
        if self._on_blocked is not None:
            self._on_blocked(Blocked(tool_name=_POLICY, error=error, message=error.model_message))
