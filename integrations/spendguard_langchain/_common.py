"""What both LangChain adapters share: the install hint and the pricing input."""

from __future__ import annotations

from collections.abc import Mapping

from spendguard.pricing import PriceRule, Pricing

__all__ = ["INSTALL_HINT", "Prices", "as_pricing"]

INSTALL_HINT = (
    'spendguard_langchain needs LangChain: pip install "spendguard[langchain]" '
    "(langchain-core and langchain 1.x)"
)

Prices = Pricing | Mapping[str, PriceRule]
"""A :class:`~spendguard.pricing.Pricing` or the rules to build one (tool name -> price)."""


def as_pricing(prices: Prices) -> Pricing:
    """Return ``prices`` as a :class:`~spendguard.pricing.Pricing`."""
    return prices if isinstance(prices, Pricing) else Pricing(prices)
