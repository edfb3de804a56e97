"""Allowlists of networks, recipients and origins for 402 challenges, deny by default."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from spendguard import InvalidArgumentError
from spendguard_agentcore._challenge import ChallengeError, PaymentOption, address_key, origin

__all__ = ["Allowlists"]

_WHAT = {
    "network": "a network",
    "pay_to": "a recipient",
    "origin": "a resource origin",
}


@dataclass(frozen=True, slots=True, init=False)
class Allowlists:
    """What a 402 challenge may ask to pay: networks, recipients (pay-to addresses) and
    resource origins. Each list is off when None; once given, anything not on it is refused,
    including an option that does not say (deny by default).

    The SDK chooses which option to pay after the policy answers, so every option it might
    pay must be allowed: one option outside a list refuses the whole challenge, with the rule
    of that list (``"allowlist_network"``, ``"allowlist_pay_to"``, ``"allowlist_origin"``).

    Args:
        networks: Network names, compared case-insensitively. x402 v1 and v2 name networks
            differently (``"base"`` and ``"eip155:8453"``): list both to allow both. An MPP
            ``evm`` challenge's network is ``"eip155:<chainId>"``.
        pay_to: Recipient addresses (x402 ``payTo``, MPP ``recipient``); EVM ``0x``
            addresses compared case-insensitively, others exactly.
        origins: Origins such as ``"https://api.example.com"``, compared with the origin of
            the x402 ``resource`` URL; an MPP challenge's ``realm`` must be the host of one.
            The challenge states its own resource (the SDK passes no URL to the policy), so
            this screens honest mistakes and misdirected challenges, not a lying payee.

    Raises:
        InvalidArgumentError: A list is a plain string, is empty, or holds an entry that is
            not a non-empty string (or, for ``origins``, not an http(s) origin).
    """

    networks: frozenset[str] | None
    pay_to: frozenset[str] | None
    origins: frozenset[str] | None

    def __init__(
        self,
        *,
        networks: Iterable[str] | None = None,
        pay_to: Iterable[str] | None = None,
        origins: Iterable[str] | None = None,
    ) -> None:
        object.__setattr__(self, "networks", _entries("networks", networks, str.casefold))
        object.__setattr__(self, "pay_to", _entries("pay_to", pay_to, address_key))
        object.__setattr__(self, "origins", _entries("origins", origins, _checked_origin))

    def check(self, options: Sequence[PaymentOption]) -> None:
        """Refuse ``options`` unless every one is on every configured list.

        Raises:
            ChallengeError: An option is not allowed; ``rule`` names the list.
        """
        for option in options:
            self._check(option)

    def _check(self, option: PaymentOption) -> None:
        network = None if option.network is None else option.network.casefold()
        if self.networks is not None and network not in self.networks:
            raise _refused("network", option.network)
        pay_to = None if option.pay_to is None else address_key(option.pay_to)
        if self.pay_to is not None and pay_to not in self.pay_to:
            raise _refused("pay_to", option.pay_to)
        if self.origins is not None and not self._origin_allowed(option):
            raise _refused("origin", option.origin)

    def _origin_allowed(self, option: PaymentOption) -> bool:
        assert self.origins is not None
        if option.origin is None:
            return False
        if option.protocol == "mpp":  # a realm: a host name
            hosts = {entry.split("://", 1)[1].split(":", 1)[0] for entry in self.origins}
            return option.origin.lower() in hosts
        return option.origin in self.origins


def _entries(name: str, values: Iterable[str] | None, key: object) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidArgumentError(
            f"{name} must be a collection of strings, got {values!r}", argument=name
        )
    entries = list(values)
    if not entries or not all(isinstance(value, str) and value for value in entries):
        raise InvalidArgumentError(
            f"{name} must hold at least one non-empty string (None turns the list off)",
            argument=name,
        )
    assert callable(key)
    return frozenset(key(value) for value in entries)


def _checked_origin(value: str) -> str:
    found = origin(value)
    parts = urlsplit(value.strip())
    if found is None or parts.path not in ("", "/") or parts.query or "@" in parts.netloc:
        raise InvalidArgumentError(
            f"origins must be http(s) origins such as 'https://api.example.com', got {value!r}",
            argument="origins",
        )
    return found


def _refused(kind: str, value: str | None) -> ChallengeError:
    said = "names none" if value is None else f"names {value[:80]!r}"
    return ChallengeError(
        f"a payment option's {kind.replace('_', '-')} is not on the allowlist (it {said})",
        rule=f"allowlist_{kind}",
        model_reason=f"the payment request asks to pay {_WHAT[kind]} that is not allowed",
    )
