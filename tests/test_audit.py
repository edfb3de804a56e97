"""The hash-chained audit trail, its verification, and the report built from it."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from spendguard.audit import GENESIS, JsonlSink, read_records, verify
from spendguard.burndown import render, summarize
from spendguard.cli import main
from spendguard.demo import run_demo
from spendguard.events import CommittedRecord


def record(n: int) -> CommittedRecord:
    return CommittedRecord(
        session_id="s-1",
        currency="USD",
        wall_time=1_800_000_000.0 + n,
        mono_time=float(n),
        tool="buy",
        hold_id=f"h-{n}",
        amount=f"0.{n:02d}",
        held="0.99",
        settlement="external",
    )


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        for n in range(1, 6):
            sink.emit(record(n))
    return path


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_an_intact_trail_verifies_and_reads_back(trail: Path) -> None:
    check = verify(trail)
    assert (check.ok, check.records, check.line, check.problem) == (True, 5, None, None)
    assert read_records(trail) == [record(n) for n in range(1, 6)]
    first = json.loads(lines(trail)[0])
    assert first["prev"] == GENESIS
    assert first["amount"] == "0.01"  # exact decimal text
    assert json.loads(lines(trail)[1])["prev"] == first["hash"]
    assert check.head == json.loads(lines(trail)[-1])["hash"]


def test_an_edited_line_is_named(trail: Path) -> None:
    text = lines(trail)
    text[2] = text[2].replace('"amount":"0.03"', '"amount":"0.00"')
    trail.write_text("".join(text), encoding="utf-8")
    check = verify(trail)
    assert (check.ok, check.line, check.records) == (False, 3, 2)
    assert "edited" in str(check.problem)


def test_an_edit_that_recomputes_its_own_hash_breaks_the_next_line(trail: Path) -> None:
    text = lines(trail)
    fields = json.loads(text[2])
    fields["amount"] = "0.00"
    body = {k: v for k, v in fields.items() if k not in ("prev", "hash")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    fields["hash"] = hashlib.sha256(f"{fields['prev']}\n{canonical}".encode()).hexdigest()
    text[2] = json.dumps(fields, separators=(",", ":")) + "\n"
    trail.write_text("".join(text), encoding="utf-8")
    check = verify(trail)
    assert (check.ok, check.line) == (False, 4)
    assert "does not follow line 3" in str(check.problem)


def test_a_deleted_line_is_named(trail: Path) -> None:
    text = lines(trail)
    del text[1]
    trail.write_text("".join(text), encoding="utf-8")
    check = verify(trail)
    assert (check.ok, check.line) == (False, 2)
    assert "deleted, inserted or moved" in str(check.problem)


def test_reordered_lines_are_named(trail: Path) -> None:
    text = lines(trail)
    text[3], text[4] = text[4], text[3]
    trail.write_text("".join(text), encoding="utf-8")
    assert (verify(trail).ok, verify(trail).line) == (False, 4)


def test_a_cut_short_line_is_named(trail: Path) -> None:
    text = lines(trail)
    text[-1] = text[-1][:40]
    trail.write_text("".join(text), encoding="utf-8")
    check = verify(trail)
    assert (check.ok, check.line) == (False, 5)
    assert "not a JSON line" in str(check.problem)


def test_lines_removed_from_the_end_fail_against_the_head_kept(trail: Path) -> None:
    head = verify(trail).head
    trail.write_text("".join(lines(trail)[:-2]), encoding="utf-8")
    assert verify(trail).ok  # a chain alone cannot tell
    check = verify(trail, expect_head=head)
    assert not check.ok
    assert "removed" in str(check.problem)


def test_a_reopened_file_continues_the_chain(trail: Path) -> None:
    with JsonlSink(trail) as sink:
        sink.emit(record(6))
        assert sink.head == verify(trail).head
    assert (verify(trail).ok, verify(trail).records) == (True, 6)


def test_threads_writing_together_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "threads.jsonl"
    barrier = threading.Barrier(8)
    with JsonlSink(path) as sink:

        def write() -> None:
            barrier.wait()
            for n in range(50):
                sink.emit(record(n))

        threads = [threading.Thread(target=write) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert (verify(path).ok, verify(path).records) == (True, 400)


def test_cli_verify_exit_codes(trail: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(trail)]) == 0
    assert "5 records, chain intact" in capsys.readouterr().out
    text = lines(trail)
    del text[3]
    trail.write_text("".join(text), encoding="utf-8")
    assert main(["audit", "verify", str(trail)]) == 1
    out = capsys.readouterr().out
    assert "line 4: does not follow line 3" in out
    assert main(["audit", "verify", "--json", str(trail)]) == 1
    assert json.loads(capsys.readouterr().out)["line"] == 4
    assert main(["audit", "verify", str(trail.with_name("missing.jsonl"))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("budget", ["1.00", "0.30"])
def test_the_report_of_the_demo_equals_the_servers_totals(tmp_path: Path, budget: str) -> None:
    path = tmp_path / "demo.jsonl"
    outcome = run_demo(io.StringIO(), budget=budget, audit=path)
    assert verify(path).ok
    (session,) = summarize(read_records(path))
    assert outcome.server_available is not None
    assert session.limit == Decimal(budget)
    assert session.left == outcome.server_available  # the emulator's own figure
    assert session.spent == Decimal(budget) - outcome.server_available
    assert session.spent == sum(m.amount for m in outcome.paid)
    assert session.server_available == outcome.server_available
    assert session.allowed == len(outcome.paid)
    assert session.blocked == len(outcome.blocked)
    for tool, summary in session.tools.items():
        assert summary.blocked == outcome.blocked.count(tool)


def test_report_prints_sessions_and_tools_and_draws_the_burn_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "demo.jsonl"
    run_demo(io.StringIO(), audit=path)
    png = tmp_path / "burn.png"
    assert main(["report", str(path), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "premium_report" in out
    assert "  all tools                   7        1         0.97" in out
    assert "  left: 0.03 USD" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_of_records_without_a_limit_says_so() -> None:
    text = render(summarize([record(1)]))
    assert "limit unknown" in text
    assert "left: unknown" in text


def test_report_warns_about_a_broken_chain(trail: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = lines(trail)
    del text[0]
    trail.write_text("".join(text), encoding="utf-8")
    assert main(["report", str(trail)]) == 0
    captured = capsys.readouterr()
    assert "warning" in captured.err
    assert "line 1" in captured.err
    assert "s-1" in captured.out
