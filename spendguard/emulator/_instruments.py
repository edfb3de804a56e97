"""The payment instrument operations: create, get, list, balance and (soft) delete.

Instruments are embedded crypto wallets owned by one user under one manager. A deleted
one keeps its record (status ``DELETED``) but is not found by any later request.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from spendguard.emulator._call import Call, Env, once
from spendguard.emulator._errors import not_found
from spendguard.emulator._pricing import invalid
from spendguard.emulator._state import CONTEXT, InstrumentRecord, new_id, page

#: The chains a wallet of each network holds balances on.
CHAINS: dict[str, tuple[str, ...]] = {
    "ETHEREUM": ("BASE", "BASE_SEPOLIA", "ETHEREUM"),
    "SOLANA": ("SOLANA", "SOLANA_DEVNET"),
}
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def address(network: str, seed: str) -> str:
    """A wallet address of the network's form, derived from the hex ``seed``."""
    if network.upper() == "SOLANA":
        return "".join(_BASE58[int(seed[i : i + 2], 16) % 58] for i in range(0, 64, 2)) + "Emu1ator"
    return "0x" + seed[:40]


def atomic(amount: Decimal, decimals: int) -> int:
    """``amount`` in atomic units of a ``decimals``-decimal token (exact, or ValueError)."""
    scaled = amount.scaleb(decimals, CONTEXT)
    if scaled != scaled.to_integral_value(context=CONTEXT):
        raise ValueError(f"{amount} has more than {decimals} decimals")
    return int(scaled)


def create_payment_instrument(env: Env, call: Call) -> dict[str, object]:
    """CreatePaymentInstrument: an ACTIVE embedded wallet with an emulated address."""

    def produce() -> dict[str, object]:
        instrument_id = new_id("payment-instrument-")
        details = call.params["paymentInstrumentDetails"]
        assert isinstance(details, dict)
        wallet = dict(details["embeddedCryptoWallet"])
        seed = hashlib.sha256(instrument_id.encode()).hexdigest()
        wallet.setdefault("walletAddress", address(str(wallet["network"]), seed))
        record = InstrumentRecord(
            instrument_id=instrument_id,
            arn=call.arn,
            user_id=call.user_id,
            connector_id=str(call.params["paymentConnectorId"]),
            instrument_type=str(call.params["paymentInstrumentType"]),
            details={"embeddedCryptoWallet": wallet},
            created_at=call.now,
        )
        env.store.add_instrument(record)
        return {"paymentInstrument": record.to_wire()}

    return once(env, call, "CreatePaymentInstrument", produce)


def _requested(env: Env, call: Call) -> InstrumentRecord:
    """The caller's instrument, under the connector the request names (if it names one)."""
    instrument_id = str(call.params["paymentInstrumentId"])
    record = env.store.instrument(call.arn, call.user_id, instrument_id)
    connector = call.params.get("paymentConnectorId")
    if connector is not None and connector != record.connector_id:
        raise not_found(f"Payment instrument {instrument_id} was not found")
    return record


def get_payment_instrument(env: Env, call: Call) -> dict[str, object]:
    """GetPaymentInstrument: the caller's own instrument."""
    return {"paymentInstrument": _requested(env, call).to_wire()}


def list_payment_instruments(env: Env, call: Call) -> dict[str, object]:
    """ListPaymentInstruments: the caller's instruments, optionally for one connector."""
    connector = call.params.get("paymentConnectorId")
    mine = [
        r
        for r in env.store.instruments_of(call.arn, call.user_id)
        if connector is None or r.connector_id == connector
    ]
    items, token = page(mine, call.params.get("nextToken"), call.params.get("maxResults"))
    out: dict[str, object] = {"paymentInstruments": [r.summary() for r in items]}
    if token is not None:
        out["nextToken"] = token
    return out


def get_payment_instrument_balance(env: Env, call: Call) -> dict[str, object]:
    """GetPaymentInstrumentBalance: the wallet's token balance on one chain of its network.

    Raises:
        ApiError: ValidationException for a chain the wallet's network does not have.
    """
    with env.store.lock:
        record = _requested(env, call)
        chain = str(call.params["chain"])
        if chain not in CHAINS.get(record.network, ()):
            raise invalid("chain", f"{chain} is not a chain of a {record.network} wallet")
        balance = record.balances.get(chain, 0)
    token_balance = {
        "amount": str(balance),
        "decimals": env.decimals,
        "token": str(call.params["token"]),
        "network": record.network,
        "chain": chain,
    }
    return {"paymentInstrumentId": record.instrument_id, "tokenBalance": token_balance}


def delete_payment_instrument(env: Env, call: Call) -> dict[str, object]:
    """DeletePaymentInstrument: soft delete; a deleted instrument is not found again."""
    with env.store.lock:
        _requested(env, call).delete(call.now)
    return {"status": "DELETED"}
