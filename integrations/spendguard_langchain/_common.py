"""What both LangChain adapters share: the install hint, pricing input and settling a hold."""

from __future__ import annotations

from collections.abc import Mapping

from spendguard import Hold
from spendguard.pricing import PriceRule, Pricing
from spendguard.pricing import settle as settle_hold

__all__ = ["INSTALL_HINT", "Prices", "as_pricing", "settle"]

INSTALL_HINT = (
    'spendguard_langchain needs LangChain: pip install "spendguard[langchain]" '
    "(langchain-core and langchain 1.x)"
)

Prices = Pricing | Mapping[str, PriceRule]
"""A :class:`~spendguard.pricing.Pricing` or the rules to build one (tool name -> price)."""


def as_pricing(prices: Prices) -> Pricing:
    """Return ``prices`` as a :class:`~spendguard.pricing.Pricing`."""
    return prices if isinstance(prices, Pricing) else Pricing(prices)


def settle(hold: Hold, *, failed: bool) -> None:
    """Commit the hold of a call that finished, release the one of a call that failed.

    A failure to settle is logged, not raised (see :func:`spendguard.pricing.settle`).
    """
    settle_hold(hold, ran=not failed)
