"""The ``spendguard audit verify`` and ``spendguard report`` commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

__all__ = ["add_commands", "run_report", "run_verify"]

EXIT_BROKEN, EXIT_USAGE = 1, 2


def add_commands(commands: Any) -> None:
    """Add ``audit verify`` and ``report`` to the CLI's subparsers."""
    audit = commands.add_parser("audit", help="check an audit trail (a JSONL sink's file)")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    check = audit_commands.add_parser(
        "verify",
        help="check the hash chain: exit 0 intact, 1 edited, deleted or reordered lines",
    )
    check.add_argument("file", help="the JSONL file a spendguard.audit.JsonlSink wrote")
    check.add_argument("--head", help="the head hash a previous check printed (detects cuts)")
    check.add_argument("--json", action="store_true", help="print JSON for scripts")

    report = commands.add_parser(
        "report", help="per session and tool: allowed, blocked, spent, left (from an audit)"
    )
    report.add_argument("file", help="the JSONL file a spendguard.audit.JsonlSink wrote")
    report.add_argument(
        "--plot", metavar="OUT.png", help="also draw the burn-down (needs spendguard[plot])"
    )


def run_verify(args: argparse.Namespace, out: TextIO) -> int:
    """``spendguard audit verify FILE``."""
    from spendguard.audit import verify  # noqa: PLC0415

    try:
        result = verify(args.file, expect_head=args.head)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"spendguard: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        fields = {
            "ok": result.ok,
            "records": result.records,
            "head": result.head,
            "line": result.line,
            "problem": result.problem,
        }
        print(json.dumps(fields), file=out)
    elif result.ok:
        print(f"{args.file}: {result.records} records, chain intact; head {result.head}", file=out)
    else:
        where = f"line {result.line}: " if result.line is not None else ""
        print(f"{args.file}: {where}{result.problem}", file=out)
        print(f"  {result.records} records before it are intact", file=out)
    return 0 if result.ok else EXIT_BROKEN


def run_report(args: argparse.Namespace, out: TextIO) -> int:
    """``spendguard report FILE [--plot OUT.png]``."""
    from spendguard.audit import read_records, verify  # noqa: PLC0415
    from spendguard.burndown import plot, render, summarize  # noqa: PLC0415

    try:
        check = verify(args.file)
        records = read_records(args.file)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"spendguard: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not check.ok:
        where = f"line {check.line}: " if check.line is not None else ""
        print(f"spendguard: warning: {args.file}: {where}{check.problem}", file=sys.stderr)
    summaries = summarize(records)
    print(render(summaries), end="", file=out)
    if args.plot:
        try:
            plot(summaries, args.plot)
        except ImportError as exc:
            print(f"spendguard: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"burn-down drawn to {args.plot}", file=out)
    return 0
