"""The operator commands of the console script, on the shared Redis ledger.

``spendguard holds list|release`` and ``spendguard session freeze|unfreeze``. They talk to
Redis only (never to AWS). Exit codes as the rest of the CLI: 0 done; 1 other failure (the
ledger lost the session's data: reopen it first); 2 usage; 4 no such open hold; 6 Redis could
not be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from spendguard._errors import (
    InvalidArgumentError,
    LedgerDataLostError,
    LedgerUnavailableError,
)
from spendguard._ledger import HoldInfo

__all__ = ["add_holds_commands", "add_session_commands", "run"]

EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 1, 2, 4, 6
_COMMANDS = {
    ("holds", "list"),
    ("holds", "release"),
    ("session", "freeze"),
    ("session", "unfreeze"),
}


def _ledger_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        required=True,
        help="the shared Redis ledger's URL (redis://, or rediss:// for TLS)",
    )
    parser.add_argument(
        "--cluster", action="store_true", help="the URL names a node of a Redis Cluster"
    )
    parser.add_argument(
        "--prefix", default="spendguard", help="the ledger's key prefix (default %(default)s)"
    )
    parser.add_argument("--payment-manager-arn", required=True)
    parser.add_argument(
        "--payment-session-id", "--session-id", dest="session_id", required=True,
        help="the payment session id",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def add_holds_commands(commands: Any) -> None:
    """``holds list`` and ``holds release`` under ``commands`` (argparse subparsers)."""
    holds = commands.add_parser("holds", help="list or release a session's open holds (Redis)")
    holds_commands = holds.add_subparsers(dest="holds_command", required=True)
    listing = holds_commands.add_parser(
        "list", help="the open holds: id, amount, settlement, tool, age, lease left"
    )
    _ledger_options(listing)
    release = holds_commands.add_parser(
        "release", help="settle a stuck hold: --drop (not spent) or --charge (spent)"
    )
    _ledger_options(release)
    release.add_argument("--hold-id", required=True, help="the hold's id, from `holds list`")
    how = release.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--drop", action="store_true", help="the call spent nothing: give the money back"
    )
    how.add_argument(
        "--charge", action="store_true", help="count its full amount as spent, as a lapse does"
    )


def add_session_commands(session_commands: Any) -> None:
    """``session freeze`` and ``session unfreeze`` under the ``session`` subparsers."""
    freeze = session_commands.add_parser(
        "freeze", help="block every charge of the session in every process (Redis)"
    )
    _ledger_options(freeze)
    unfreeze = session_commands.add_parser("unfreeze", help="let the session charge again")
    _ledger_options(unfreeze)


def handles(args: argparse.Namespace) -> bool:
    """Whether ``args`` is one of these commands."""
    sub = getattr(args, "holds_command", None) or getattr(args, "session_command", None)
    return (args.command, sub) in _COMMANDS


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run one operator command; returns the exit code."""
    try:
        return _run(args, out)
    except LedgerDataLostError as exc:
        return _fail(out, args.json, EXIT_ERROR, f"{exc}")
    except LedgerUnavailableError as exc:
        return _fail(out, args.json, EXIT_UNAVAILABLE, f"Shared ledger: {exc}")
    except InvalidArgumentError as exc:
        return _fail(out, args.json, EXIT_USAGE, f"Invalid argument: {exc}")
    except ImportError as exc:  # redis-py is an extra
        return _fail(out, args.json, EXIT_ERROR, str(exc))


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from spendguard.controls import SessionControls  # noqa: PLC0415
    from spendguard.redis_ledger import RedisLedger  # noqa: PLC0415 - needs the extra

    ledger = RedisLedger.from_url(args.redis_url, cluster=args.cluster, prefix=args.prefix)
    controls = SessionControls(ledger, args.payment_manager_arn, args.session_id)
    sid = args.session_id
    if args.command == "session":
        frozen = args.session_command == "freeze"
        changed = controls.freeze() if frozen else controls.unfreeze()
        state = "frozen" if frozen else "not frozen"
        text = f"Payment session {sid} is {state}" + ("." if changed else " (it already was).")
        _emit(out, args.json, {"session_id": sid, "frozen": frozen, "changed": changed}, text)
        return 0
    if args.holds_command == "list":
        holds = controls.holds()
        data = {
            "session_id": sid,
            "frozen": controls.frozen,
            "holds": [_hold_dict(h) for h in holds],
        }
        _emit(out, args.json, data, _describe(sid, holds, bool(data["frozen"])))
        return 0
    settled = controls.release(args.hold_id, charge=args.charge)
    if settled is None:
        return _fail(
            out, args.json, EXIT_NOT_FOUND, f"No open hold {args.hold_id} in payment session {sid}."
        )
    how = "charged (counted as spent)" if args.charge else "dropped (not spent)"
    data = {"session_id": sid, "charged": args.charge, "hold": _hold_dict(settled)}
    _emit(out, args.json, data, f"Hold {settled.hold_id} of {settled.amount}: {how}.")
    return 0


def _hold_dict(hold: HoldInfo) -> dict[str, Any]:
    return {
        "hold_id": hold.hold_id,
        "amount": str(hold.amount),
        "settlement": hold.settlement,
        "tool": hold.tool,
        "age_seconds": round(hold.age, 3),
        "lease_left_seconds": round(hold.lease_left, 3),
    }


def _describe(sid: str, holds: list[HoldInfo], frozen: bool) -> str:
    state = " (FROZEN: every charge is blocked)" if frozen else ""
    lines = [f"Payment session {sid}{state}: {len(holds)} open hold(s)"]
    if holds:
        header = f"  {'HOLD ID':<24} {'AMOUNT':>14}  {'SETTLEMENT':<10}"
        lines.append(f"{header}  TOOL / AGE / LEASE LEFT")
    for h in holds:
        lines.append(
            f"  {h.hold_id:<24} {h.amount!s:>14}  {h.settlement:<10}  {h.tool or '-'} / "
            f"{h.age:.0f} s / {h.lease_left:.0f} s"
        )
    return "\n".join(lines)


def _emit(out: TextIO, as_json: bool, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, indent=2) if as_json else text, file=out)


def _fail(out: TextIO, as_json: bool, code: int, message: str) -> int:
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}), file=out)
    else:
        print(f"spendguard: {message}", file=sys.stderr)
    return code
