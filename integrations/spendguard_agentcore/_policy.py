"""A ``pre_sign_policy`` for the AgentCore payments SDK that spends through a SpendGuard."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from spendguard import InvalidArgumentError, Money, Settlement, SpendGuard, SpendGuardError
from spendguard.gate import GuardResolutionError, OnBlocked
from spendguard.pool import GuardPool
from spendguard.pricing import Blocked
from spendguard_agentcore._allowlist import Allowlists
from spendguard_agentcore._challenge import (
    USDC_ASSETS,
    PaymentOption,
    normalize_assets,
    payment_options,
)

__all__ = ["PolicyResolver", "SpendGuardPreSignPolicy", "follow_config"]

#: Returns the guard that pays for a payment, given the SDK's payment request.
PolicyResolver = Callable[[object], SpendGuard]

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

    The guard may be found per payment: pass a resolver instead, a callable of the payment
    request returning the guard. :func:`follow_config` makes one that follows the plugin
    config's current ``payment_session_id`` through a :class:`~spendguard.pool.GuardPool`
    (``update_payment_session_id()`` included). A resolver that raises or returns no guard
    blocks the payment (rule ``"session_unresolved"``).

    Args:
        guard: The guard of the payment session in ``AgentCorePaymentsPluginConfig``, or a
            resolver (see above).
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
        guard: SpendGuard | PolicyResolver,
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
        if not isinstance(guard, SpendGuard) and not callable(guard):
            raise InvalidArgumentError(
                f"guard must be a SpendGuard or a callable returning one, got {guard!r}",
                argument="guard",
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
            guard = self._resolve(payment_required_request)
            amount = self._price_for(guard, payment_required_request)
            guard.reserve(amount, settlement=self._settlement, tool=_POLICY).commit()
        except SpendGuardError as error:
            self._refuse(error)
            return False
        with self._lock:
            self._signed.append(amount)
        return True

    def _price_for(self, guard: SpendGuard, payment_required_request: object) -> Money:
        try:
            return self.price(payment_required_request)
        except SpendGuardError as error:
            guard._record_blocked(_POLICY, error)  # the guard records its own refusals
            raise

    def _resolve(self, payment_required_request: object) -> SpendGuard:
        if isinstance(self._guard, SpendGuard):
            return self._guard
        try:
            guard = self._guard(payment_required_request)
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            raise GuardResolutionError(f"the guard resolver failed: {detail}") from exc
        if not isinstance(guard, SpendGuard):
            kind = type(guard).__name__
            raise GuardResolutionError(f"the guard resolver returned {kind}, not a SpendGuard")
        return guard

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


class PluginConfig(Protocol):
    """What :func:`follow_config` reads of ``AgentCorePaymentsPluginConfig``."""

    payment_manager_arn: str
    payment_session_id: str | None
    user_id: str | None
    agent_name: str | None


def follow_config(pool: GuardPool, config: PluginConfig) -> PolicyResolver:
    """A resolver for :class:`SpendGuardPreSignPolicy` that follows the plugin's session.

    At every payment it reads the config's ``payment_manager_arn``, current
    ``payment_session_id`` (as ``update_payment_session_id()`` or ``auto_session`` left it),
    ``user_id`` and ``agent_name``, and returns the pool's guard for them. Wire it after
    making the config (the SDK reads ``config.pre_sign_policy`` at each payment)::

        config.pre_sign_policy = SpendGuardPreSignPolicy(follow_config(pool, config))

    With ``auto_session`` the SDK runs the policy *before* it creates the session, so the
    first payment finds no session and is blocked (fail closed): create the session first
    and set it with ``update_payment_session_id()``.

    Args:
        pool: The pool handing out guards.
        config: The ``AgentCorePaymentsPluginConfig`` the plugin or middleware uses.

    Returns:
        The resolver.
    """

    def resolve(payment_required_request: object) -> SpendGuard:
        session_id = config.payment_session_id
        if not session_id:
            raise GuardResolutionError(
                "the payments plugin config has no payment_session_id yet; create the session "
                "and call update_payment_session_id() before paying"
            )
        return pool.get(
            config.payment_manager_arn,
            session_id,
            user_id=config.user_id,
            agent_name=config.agent_name,
        )

    return resolve
