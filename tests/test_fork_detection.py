"""A fork while an in-memory ledger holds money warns in the child: workers would spend the
same budget. Each case runs in a fresh interpreter (no other ledger of the test run is alive
there) that really calls ``os.fork()``; the child reports what it saw through a pipe."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import pytest

from spendguard import InMemoryLedger
from spendguard import _fork as fork_module
from spendguard.ledger import ForkedLedgerWarning

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no os.fork on Windows")

_HARNESS = textwrap.dedent(
    """
    import json, logging, os, sys, threading, warnings
    from decimal import Decimal
    sys.path.insert(0, {tests!r})
    from support import ARN, SID, Clock, ScriptedClient, Session
    from spendguard import InMemoryLedger, SpendGuard
    from spendguard.ledger import ServerView

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logging.getLogger("spendguard").addHandler(Keep())
    view = ServerView(Decimal(10), Decimal(0), 1.0)
    ledger = InMemoryLedger()
    {setup}

    def forked(check=lambda: None):
        read, write = os.pipe()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    seen = [w for w in caught if w.category.__name__ == "ForkedLedgerWarning"]
                    report = {{
                        "warnings": [str(w.message) for w in seen],
                        "logs": records,
                        "check": check(),
                    }}
                    os.write(write, json.dumps(report).encode())
                    code = 0
                finally:
                    os._exit(code)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        return json.loads(data)

    {run}
    """
)


def run_case(setup: str, run: str = "print(json.dumps(forked()))") -> dict[str, object]:
    tests = str(Path(__file__).resolve().parent)
    code = _HARNESS.format(tests=tests, setup=setup, run=run)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_a_fork_with_live_holds_warns_in_the_child() -> None:
    report = run_case('ledger.reserve("k", "h", Decimal(1), view, "session", 60, 0.0)')
    [message] = report["warnings"]  # type: ignore[misc]
    assert "spends the same budget" in message
    assert "spendguard.redis_ledger.RedisLedger" in message
    [log] = report["logs"]  # type: ignore[misc]
    assert message in log
    assert "pid" in log


def test_a_guard_on_the_default_ledger_warns_too() -> None:
    setup = (
        "guard = SpendGuard(ARN, SID, client=ScriptedClient(Session()), **Clock().kwargs)\n"
        "guard.reserve('0.50', settlement='external').commit()"  # a charge, nothing held
    )
    report = run_case(setup)
    assert len(report["warnings"]) == 1  # type: ignore[arg-type]


def test_a_fork_without_live_state_is_quiet() -> None:
    setup = (
        'ledger.reserve("k", "h", Decimal(1), view, "session", 60, 0.0)\n'
        'ledger.release("k", "h", 0.0)\n'
        "empty = InMemoryLedger()"
    )
    report = run_case(setup)
    assert report["warnings"] == []
    assert report["logs"] == []


def test_the_child_gets_a_usable_lock_even_if_a_thread_held_it_at_the_fork() -> None:
    setup = textwrap.dedent(
        """
        ledger.reserve("k", "h", Decimal(1), view, "session", 60, 0.0)
        taken, done = threading.Event(), threading.Event()

        def hold_the_lock():
            with ledger._lock:
                taken.set()
                done.wait(30)

        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        assert taken.wait(30)
        """
    )
    run = textwrap.dedent(
        """
        def child_commits():
            return ledger.commit("k", "h", Decimal(1), 1.0, 0.0)

        report = forked(child_commits)
        done.set()
        holder.join()
        print(json.dumps(report))
        """
    )
    report = run_case(setup, run)
    assert report["check"] is True
    assert len(report["warnings"]) == 1  # type: ignore[arg-type]


def test_ledgers_are_watched_through_weak_references_only() -> None:
    ledger = InMemoryLedger()
    ref = weakref.ref(ledger)
    assert ledger in fork_module._ledgers
    del ledger
    gc.collect()
    assert ref() is None
    assert issubclass(ForkedLedgerWarning, UserWarning)
