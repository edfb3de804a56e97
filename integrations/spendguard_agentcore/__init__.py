"""spendguard for the official AgentCore payments SDK: a ``pre_sign_policy`` that keeps signed
402 payments inside the payment session's budget.

Install with ``pip install "spendguard[agentcore]"``::

    from bedrock_agentcore.payments.integrations.config import AgentCorePaymentsPluginConfig
    from spendguard_agentcore import SpendGuardPreSignPolicy

    config = AgentCorePaymentsPluginConfig(..., pre_sign_policy=SpendGuardPreSignPolicy(guard))
"""

from __future__ import annotations

try:
    import bedrock_agentcore.payments  # noqa: F401
except ImportError as exc:  # pragma: no cover - needs the package missing
    raise ImportError(
        'spendguard_agentcore needs the AgentCore SDK: pip install "spendguard[agentcore]"'
    ) from exc

from spendguard_agentcore._allowlist import Allowlists
from spendguard_agentcore._challenge import (
    USDC_ASSETS,
    ChallengeError,
    PaymentOption,
    normalize_assets,
    payment_options,
)
from spendguard_agentcore._policy import (
    PluginConfig,
    PolicyResolver,
    SpendGuardPreSignPolicy,
    follow_config,
)

__all__ = [
    "USDC_ASSETS",
    "Allowlists",
    "ChallengeError",
    "PaymentOption",
    "PluginConfig",
    "PolicyResolver",
    "SpendGuardPreSignPolicy",
    "follow_config",
    "normalize_assets",
    "payment_options",
]
