"""What both LangChain adapters share: the install hint and the pricing argument."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from spendguard import InvalidArgumentError
from spendguard.pricing import PriceRule, Pricing

__all__ = ["INSTALL_HINT", "Prices", "pricing_argument"]

INSTALL_HINT = (
    'spendguard_langchain needs LangChain: pip install "spendguard[langchain]" '
    "(langchain-core and langchain 1.x)"
)

Prices = Pricing | Mapping[str, PriceRule]
"""A :class:`~spendguard.pricing.Pricing` or the rules to build one (tool name -> price)."""


def pricing_argument(pricing: Prices | None, prices: Prices | None) -> Prices:
    """``pricing``, or the deprecated ``prices`` keyword it replaced (with a warning)."""
    if prices is None:
        if pricing is None:
            raise InvalidArgumentError("pricing is missing", argument="pricing")
        return pricing
    if pricing is not None:
        msg = "pass pricing only; prices is its deprecated alias"
        raise InvalidArgumentError(msg, argument="prices")
    warnings.warn("prices= is deprecated, pass pricing=", DeprecationWarning, stacklevel=3)
    return prices
