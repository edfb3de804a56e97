"""The ``spendguard`` console script: the local emulator, session inspection, the demo.

Exit codes: 0 success; 1 other failure; 2 usage error; 3 credentials, profile or IAM access;
4 session (or hold) not found; 5 session expired; 6 the service (or the shared ledger) could
not be reached or is throttling.
No command shows a traceback: every failure is one line on stderr (or JSON with ``--json``).
``audit verify`` exits 1 when the chain is broken (an edited, deleted or moved line).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

import spendguard
from spendguard import (
    GuardSnapshot,
    InvalidAmountError,
    Money,
    SessionAccessDeniedError,
    SessionConfigurationError,
    SessionError,
    SessionNotFoundError,
    SessionUnavailableError,
    SpendGuard,
    _cli_ops,
)
from spendguard._cli_audit import add_commands as add_audit_commands
from spendguard._cli_audit import run_report, run_verify

if TYPE_CHECKING:
    from spendguard.emulator import PaymentsEmulator
    from spendguard.types import PaymentSessionClient

DEFAULT_PORT = 8787
EXIT_ERROR, EXIT_USAGE, EXIT_DENIED, EXIT_NOT_FOUND, EXIT_EXPIRED, EXIT_UNAVAILABLE = (
    1,
    2,
    3,
    4,
    5,
    6,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spendguard",
        description="Keep AI agents within their AgentCore payment session's budget.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 credentials, profile or IAM access, "
        "4 session (or hold) not found, 5 session expired, 6 service (or shared ledger) "
        "unreachable or throttling.",
    )
    parser.add_argument(
        "--version", action="version", version=f"spendguard {spendguard.__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    emu = commands.add_parser("emulator", help="run the local AgentCore payments emulator")
    emu.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    emu.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    emu.add_argument(
        "--workers",
        type=_positive_int,
        default=32,
        help="threads for answers that must wait, e.g. injected delays (default %(default)s)",
    )
    emu.add_argument(
        "--create-session",
        metavar="BUDGET",
        type=_budget,
        help="also create a session with this USD budget and print its ids",
    )
    emu.add_argument("--user-id", default="user-1", help="owner of --create-session's session")
    emu.add_argument(
        "--seed",
        metavar="FILE",
        help="start with the sessions and wallets this JSON or TOML file describes",
    )
    emu.add_argument(
        "--print-env",
        action="store_true",
        help="print the shell `export` lines for --host/--port and exit (does not serve): "
        'eval "$(spendguard emulator --print-env --port 8787)"',
    )

    session = commands.add_parser("session", help="inspect a payment session")
    session_commands = session.add_subparsers(dest="session_command", required=True)
    show = session_commands.add_parser("show", help="limit, available amount, expiry, freshness")
    show.add_argument("--payment-manager-arn", required=True)
    show.add_argument("--session-id", required=True, help="the payment session id")
    show.add_argument("--user-id", help="the session's owner (payments user id header)")
    show.add_argument("--endpoint-url", help="service endpoint, e.g. the emulator's URL")
    show.add_argument("--region", help="AWS region (default: your AWS configuration)")
    show.add_argument("--profile", help="AWS profile (default: your AWS configuration)")
    show.add_argument(
        "--redis-url", help="also read holds and charges from this shared Redis ledger"
    )
    show.add_argument("--json", action="store_true", help="print JSON for scripts")

    _cli_ops.add_session_commands(session_commands)
    _cli_ops.add_holds_commands(commands)

    demo = commands.add_parser("demo", help="run a scripted agent against an in-process emulator")
    demo.add_argument(
        "--budget", default="1.00", type=_budget, help="session budget in USD (default 1.00)"
    )
    demo.add_argument("--audit", metavar="FILE", help="also write the audit trail (JSONL) here")
    add_audit_commands(commands)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _budget(text: str) -> str:
    try:
        Money.of(text)
    except InvalidAmountError as exc:
        raise argparse.ArgumentTypeError(f"not a budget: {exc}") from exc
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).
    """
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:  # e.g. `spendguard demo | head`: the reader left, not an error
        sys.stderr.close()
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "emulator":
        return _run_emulator(args, sys.stdout)
    if _cli_ops.handles(args):
        return _cli_ops.run(args, sys.stdout)
    if args.command == "session":
        return _show_session(args, sys.stdout)
    if args.command == "audit":
        return run_verify(args, sys.stdout)
    if args.command == "report":
        return run_report(args, sys.stdout)
    from spendguard.demo import main as demo_main  # noqa: PLC0415 - loaded only when asked

    return demo_main(["--budget", args.budget, *(["--audit", args.audit] if args.audit else [])])


class _Terminated(Exception):
    """SIGTERM, raised in the main thread so it stops the emulator like Ctrl+C does."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def _run_emulator(args: argparse.Namespace, out: TextIO) -> int:
    from spendguard.emulator import PaymentsEmulator  # noqa: PLC0415
    from spendguard.emulator._seed import Seed, apply_seed, read_seed  # noqa: PLC0415

    if args.print_env:
        return _print_env(args, out)
    try:
        seed = read_seed(args.seed) if args.seed else Seed()
    except spendguard.InvalidArgumentError as exc:
        print(f"spendguard: --seed {args.seed}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    emulator = PaymentsEmulator(args.host, args.port, workers=args.workers)
    made = apply_seed(seed, emulator)
    try:
        emulator.start()
    except OSError as exc:
        print(
            f"spendguard: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}. "
            "Pick another --port.",
            file=sys.stderr,
        )
        return EXIT_ERROR
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _banner(args, emulator, made, out)
        emulator.wait()
    except (KeyboardInterrupt, _Terminated):
        print("spendguard emulator: stopping (finishing requests in flight)", file=out, flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)  # a second SIGTERM does not wait
        emulator.stop()
    print("spendguard emulator: stopped", file=out)
    return 0


def _banner(
    args: argparse.Namespace, emulator: PaymentsEmulator, made: list[str], out: TextIO
) -> None:
    from spendguard.emulator import ENDPOINT_ENV_VAR  # noqa: PLC0415

    url = emulator.endpoint_url
    print(f"spendguard emulator: AgentCore payments on {url}", file=out)
    print(f"  export {ENDPOINT_ENV_VAR}={url}", file=out)
    print("  (any AWS credentials work; region us-east-1)", file=out)
    for line in made:
        print(f"  {line}", file=out)
    if args.create_session:
        session = emulator.create_session(args.create_session, user_id=args.user_id)
        print(f"  session {session.payment_session_id} with {session.budget} USD", file=out)
        print(
            f"  spendguard session show --endpoint-url {url} "
            f"--payment-manager-arn {session.payment_manager_arn} "
            f"--session-id {session.payment_session_id} --user-id {session.user_id}",
            file=out,
        )
    print("Press Ctrl+C to stop.", file=out, flush=True)


def _print_env(args: argparse.Namespace, out: TextIO) -> int:
    """The ``export`` lines a shell needs to send boto3 to an emulator on --host/--port."""
    from spendguard.emulator import ENDPOINT_ENV_VAR  # noqa: PLC0415

    if args.port == 0:
        print("spendguard: --print-env needs the --port the emulator will use", file=sys.stderr)
        return EXIT_USAGE
    # Clients of an emulator on every interface reach it on loopback.
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(args.host, args.host)
    host = f"[{host}]" if ":" in host else host
    exports = {
        ENDPOINT_ENV_VAR: f"http://{host}:{args.port}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "emulator",
        "AWS_SECRET_ACCESS_KEY": "emulator",
    }
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}", file=out)
    return 0


def _client(args: argparse.Namespace) -> PaymentSessionClient:
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    region = args.region or ("us-east-1" if args.endpoint_url else None)
    config = Config(retries={"mode": "standard", "total_max_attempts": 2}, read_timeout=5)
    session = boto3.Session(profile_name=args.profile, region_name=region)
    if args.endpoint_url and _is_local(args.endpoint_url) and session.get_credentials() is None:
        # The emulator takes any credentials; a newcomer should not have to invent some.
        session = boto3.Session(
            aws_access_key_id="emulator", aws_secret_access_key="emulator", region_name=region
        )
    client: PaymentSessionClient = session.client(
        "bedrock-agentcore", endpoint_url=args.endpoint_url, config=config
    )
    return client


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _show_session(args: argparse.Namespace, out: TextIO) -> int:
    waiting = threading.Timer(
        1.0,
        lambda: print(
            f"spendguard: waiting for {args.endpoint_url or 'the AgentCore endpoint'}...",
            file=sys.stderr,
            flush=True,
        ),
    )
    waiting.daemon = True
    try:
        waiting.start()
        snap = _read(args)
    except Exception as exc:  # the CLI boundary: every failure becomes a message + code
        code, message = _explain(exc, args)
        _emit_error(out, args.json, code, message)
        return code
    finally:
        waiting.cancel()
    if args.json:
        print(json.dumps(snapshot_dict(snap), indent=2), file=out)
    else:
        print(describe(snap), file=out)
    if snap.expired:
        if not args.json:
            print("The session has expired: it cannot pay for anything more.", file=out)
        return EXIT_EXPIRED
    return 0


def _read(args: argparse.Namespace) -> GuardSnapshot:
    ledger = None
    if args.redis_url:
        from spendguard.redis_ledger import RedisLedger  # noqa: PLC0415 - needs the extra

        ledger = RedisLedger.from_url(args.redis_url)
    guard = SpendGuard(
        args.payment_manager_arn,
        args.session_id,
        user_id=args.user_id,
        client=_client(args),
        ledger=ledger,
    )
    return guard.snapshot()


def _explain(exc: Exception, args: argparse.Namespace) -> tuple[int, str]:
    cause = exc.__cause__ or exc
    name = type(cause).__name__
    code = _error_code(cause)
    sid, arn = args.session_id, args.payment_manager_arn
    where = args.endpoint_url or "the AgentCore endpoint"
    who = f"payments user {args.user_id!r}" if args.user_id else "the payments user (--user-id)"
    by_cause: dict[str, tuple[int, str]] = {
        "NoCredentialsError": (
            EXIT_DENIED,
            "No AWS credentials found. Configure them (AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, --profile, or a role); against the emulator any values work.",
        ),
        "PartialCredentialsError": (EXIT_DENIED, f"Incomplete AWS credentials: {cause}."),
        "ProfileNotFound": (EXIT_DENIED, f"AWS profile not found: {cause}."),
        "NoRegionError": (
            EXIT_ERROR,
            "No AWS region configured: pass --region or set AWS_DEFAULT_REGION.",
        ),
        "EndpointConnectionError": (EXIT_UNAVAILABLE, f"Could not reach {where}."),
        "ConnectTimeoutError": (EXIT_UNAVAILABLE, f"Could not reach {where} (timed out)."),
        "ReadTimeoutError": (EXIT_UNAVAILABLE, f"{where} did not answer in time."),
    }
    if name in by_cause:
        return by_cause[name]
    if code in _THROTTLING_CODES:
        return EXIT_UNAVAILABLE, f"The service is throttling requests ({code}); try again soon."
    if isinstance(exc, SessionAccessDeniedError) and code != "AccessDeniedException":
        return EXIT_DENIED, f"The AWS credentials were rejected ({code}): refresh them."
    by_type: tuple[tuple[type[Exception], int, str], ...] = (
        (
            SessionAccessDeniedError,
            EXIT_DENIED,
            f"Access denied ({code}): the AWS identity needs IAM permission for "
            f"bedrock-agentcore:GetPaymentSession on {arn}, and {who} must own {sid}.",
        ),
        (SessionNotFoundError, EXIT_NOT_FOUND, f"Payment session {sid} not found under {arn}."),
        (SessionUnavailableError, EXIT_UNAVAILABLE, f"Could not reach {where}."),
        (SessionConfigurationError, EXIT_DENIED, f"The AWS client is not configured: {cause}."),
        (SessionError, EXIT_ERROR, f"Could not read payment session {sid}: {exc}."),
        (spendguard.LedgerUnavailableError, EXIT_UNAVAILABLE, f"Shared ledger: {exc}"),
        (ValueError, EXIT_ERROR, f"Invalid argument: {exc}"),
    )
    for kind, exit_code, message in by_type:
        if isinstance(exc, kind):
            return exit_code, message
    return EXIT_ERROR, f"Unexpected error: {type(exc).__name__}: {exc}"


_THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    code = error.get("Code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def _emit_error(out: TextIO, as_json: bool, code: int, message: str) -> None:
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}), file=out)
    else:
        print(f"spendguard: {message}", file=sys.stderr)


def _wire(money: Money | None) -> str | None:
    return None if money is None else money.to_wire()


def snapshot_dict(snap: GuardSnapshot) -> dict[str, Any]:
    """A JSON-ready view of a :class:`GuardSnapshot` (amounts as strings, times ISO 8601)."""
    return {
        "session_id": snap.session_id,
        "currency": snap.server_available.currency,
        "max_spend": _wire(snap.max_spend),
        "server_available": _wire(snap.server_available),
        "effective_available": _wire(snap.effective_available),
        "held": _wire(snap.held),
        "committed_unreflected": _wire(snap.committed_unreflected),
        "expires_at": snap.expires_at.isoformat(),
        "expired": snap.expired,
        "updated_at": snap.updated_at.isoformat(),
        "fetched_at": snap.fetched_at.isoformat(),
        "fresh_until": snap.fresh_until.isoformat(),
    }


def _ago(moment: datetime, now: datetime) -> str:
    seconds = int((now - moment).total_seconds())
    if abs(seconds) < 120:
        return f"{abs(seconds)} s {'ago' if seconds >= 0 else 'from now'}"
    minutes = seconds // 60
    return f"{abs(minutes)} min {'ago' if minutes >= 0 else 'from now'}"


def describe(snap: GuardSnapshot, now: datetime | None = None) -> str:
    """A person-readable account of the session's budget."""
    now = now or snap.fetched_at
    fmt = "%Y-%m-%d %H:%M:%S UTC"
    expiry = "EXPIRED" if snap.expired else _ago(snap.expires_at, now).replace("from now", "left")
    limit = str(snap.max_spend) if snap.max_spend is not None else "none reported"
    lines = [
        f"Payment session {snap.session_id}",
        f"  limit        {limit}",
        f"  available    {snap.server_available} (server)",
        f"  usable now   {snap.effective_available}",
        f"  expires      {snap.expires_at.astimezone(timezone.utc):{fmt}} ({expiry})",
        f"  last change  {snap.updated_at.astimezone(timezone.utc):{fmt}} "
        f"({_ago(snap.updated_at, now)})",
        f"  read at      {snap.fetched_at:{fmt}}, fresh until {snap.fresh_until:%H:%M:%S}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
