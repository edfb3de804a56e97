"""Seed files: the sessions and wallets ``spendguard emulator --seed FILE`` starts with.

JSON, or TOML when the name ends in ``.toml`` (Python 3.11+, or 3.10 with ``tomli``)::

    [[sessions]]                 # each session comes with an ACTIVE wallet of its user
    user_id = "alice"            # default "user-1"
    budget = "10.00"             # USD; default "10.00"
    expiry_minutes = 60          # 15 to 480; default 60
    network = "ETHEREUM"         # the wallet's network: ETHEREUM (default) or SOLANA
    payment_manager_arn = "..."  # default DEFAULT_MANAGER_ARN

    [[instruments]]              # more wallets
    user_id = "bob"
    network = "SOLANA"

The emulator picks the ids and the command prints them. Every problem is one
:class:`~spendguard.InvalidArgumentError` whose ``argument`` names the key, e.g.
``sessions[1].budget``.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.model import Shape, StructureShape

from spendguard._errors import InvalidArgumentError
from spendguard.emulator import _model
from spendguard.emulator._emulator import DEFAULT_MANAGER_ARN
from spendguard.emulator._errors import ApiError
from spendguard.emulator._pricing import parse_amount
from spendguard.emulator._validation import collect

if TYPE_CHECKING:
    from spendguard.emulator._emulator import PaymentsEmulator


@dataclass(frozen=True, slots=True)
class SessionSeed:
    """A session to create, with a wallet of the same user."""

    user_id: str = "user-1"
    budget: str = "10.00"
    expiry_minutes: int = 60
    network: str = "ETHEREUM"
    payment_manager_arn: str = DEFAULT_MANAGER_ARN


@dataclass(frozen=True, slots=True)
class InstrumentSeed:
    """A wallet to create."""

    user_id: str = "user-1"
    network: str = "ETHEREUM"
    payment_manager_arn: str = DEFAULT_MANAGER_ARN


@dataclass(frozen=True, slots=True)
class Seed:
    """What a seed file describes."""

    sessions: tuple[SessionSeed, ...] = ()
    instruments: tuple[InstrumentSeed, ...] = ()


def read_seed(path: str | Path) -> Seed:
    """Read and check a seed file.

    Raises:
        InvalidArgumentError: The file cannot be read or parsed, or a key is unknown or
            holds a bad value (``argument`` names the key).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read it: {exc.strerror}", argument="seed") from exc
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(f"not UTF-8 text: {exc}", argument="seed") from exc
    data = _parse_toml(text) if path.suffix.lower() == ".toml" else _parse_json(text)
    top = _table(data, "the seed")
    _known(top, ("sessions", "instruments"), None)
    sessions = tuple(_session(e, f"sessions[{i}]") for i, e in _entries(top, "sessions"))
    wallets = tuple(_instrument(e, f"instruments[{i}]") for i, e in _entries(top, "instruments"))
    return Seed(sessions, wallets)


def apply_seed(seed: Seed, emulator: PaymentsEmulator) -> list[str]:
    """Create what ``seed`` describes; returns one line per session or wallet made."""
    lines = []
    for s in seed.sessions:
        made = emulator.create_session(
            s.budget,
            user_id=s.user_id,
            expiry_minutes=s.expiry_minutes,
            payment_manager_arn=s.payment_manager_arn,
            network=s.network,
        )
        lines.append(
            f"session {made.payment_session_id} of {s.user_id}: {made.budget} USD, "
            f"wallet {made.payment_instrument_id}"
        )
    for w in seed.instruments:
        made_id = emulator.create_instrument(w.user_id, w.payment_manager_arn, network=w.network)
        lines.append(f"instrument {made_id} of {w.user_id}: {w.network} wallet")
    return lines


def _parse_json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidArgumentError(f"not valid JSON: {exc}", argument="seed") from exc


def _parse_toml(text: str) -> object:
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415 - only TOML seeds need it

        loads = tomllib.loads
    else:
        try:
            loads = importlib.import_module("tomli").loads
        except ModuleNotFoundError as exc:
            message = "reading TOML needs Python 3.11+ or `pip install tomli`; or write JSON"
            raise InvalidArgumentError(message, argument="seed") from exc
    try:
        return loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError
        raise InvalidArgumentError(f"not valid TOML: {exc}", argument="seed") from exc


def _table(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"{where} must be a table (object)", argument=where)
    return value


def _known(entry: dict[str, object], keys: tuple[str, ...], where: str | None) -> None:
    for key in entry:
        if key not in keys:
            message = f"unknown key {key!r} (known: {', '.join(keys)})"
            if where is None:
                raise InvalidArgumentError(message, argument=key)
            raise _bad(where, key, message)


def _entries(top: dict[str, object], key: str) -> list[tuple[int, dict[str, object]]]:
    items = top.get(key, [])
    if not isinstance(items, list):
        raise InvalidArgumentError(f"{key} must be a list of tables", argument=key)
    return [(i, _table(item, f"{key}[{i}]")) for i, item in enumerate(items)]


def _session(entry: dict[str, object], where: str) -> SessionSeed:
    _known(entry, _keys(SessionSeed), where)
    default = SessionSeed()
    return SessionSeed(
        user_id=_text(entry, where, "user_id", default.user_id),
        budget=_budget(entry, where, default.budget),
        expiry_minutes=_whole(entry, where, "expiry_minutes", default.expiry_minutes),
        network=_text(entry, where, "network", default.network),
        payment_manager_arn=_text(entry, where, "payment_manager_arn", default.payment_manager_arn),
    )


def _instrument(entry: dict[str, object], where: str) -> InstrumentSeed:
    _known(entry, _keys(InstrumentSeed), where)
    default = InstrumentSeed()
    return InstrumentSeed(
        user_id=_text(entry, where, "user_id", default.user_id),
        network=_text(entry, where, "network", default.network),
        payment_manager_arn=_text(entry, where, "payment_manager_arn", default.payment_manager_arn),
    )


def _keys(kind: type[SessionSeed] | type[InstrumentSeed]) -> tuple[str, ...]:
    return tuple(kind.__dataclass_fields__)


# Seed key -> the request member (operation, member path) whose model shape checks it.
_SHAPES = {
    "user_id": ("CreatePaymentSession", "userId"),
    "expiry_minutes": ("CreatePaymentSession", "expiryTimeInMinutes"),
    "payment_manager_arn": ("CreatePaymentSession", "paymentManagerArn"),
    "network": (
        "CreatePaymentInstrument",
        "paymentInstrumentDetails",
        "embeddedCryptoWallet",
        "network",
    ),
}


def _text(entry: dict[str, object], where: str, key: str, default: str) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or not value:
        raise _bad(where, key, f"must be a non-empty string, not {_shown(value)}")
    _check(value, where, key)
    return value


def _whole(entry: dict[str, object], where: str, key: str, default: int) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(where, key, f"must be a whole number, not {_shown(value)}")
    _check(value, where, key)
    return value


def _check(value: object, where: str, key: str) -> None:
    """The model's bounds, pattern and enum for the member ``key`` stands for."""
    operation, *path = _SHAPES[key]
    shape: Shape = _model.input_shape(operation)
    for name in path:
        assert isinstance(shape, StructureShape)
        shape = shape.members[name]
    problems = collect(value, shape)
    if problems:
        detail = problems[0].message.removeprefix("input: ")
        raise _bad(where, key, f"{detail}, not {_shown(value)}")


def _budget(entry: dict[str, object], where: str, default: str) -> str:
    value = entry.get("budget", default)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _bad(where, "budget", f'must be an amount like "10.00", not {_shown(value)}')
    try:
        parse_amount(str(value), "budget")
    except ApiError as exc:
        raise _bad(where, "budget", f"not an amount: {_shown(value)}") from exc
    return str(value)


def _bad(where: str, key: str, message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{where}.{key}: {message}", argument=f"{where}.{key}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
