"""Every example runs offline against the emulator, exits 0 and shows a blocked call."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, subprocess.Popen[str]]]:
    # Started together: most of each run is importing its framework.
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES / name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in SCRIPTS
    }
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_there_are_examples() -> None:
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_and_blocks_a_call(name: str, runs: dict[str, subprocess.Popen[str]]) -> None:
    out, _ = runs[name].communicate(timeout=120)
    assert runs[name].returncode == 0, out
    assert "blocked" in out.lower(), out


TWO_USERS = [name for name in SCRIPTS if name.startswith("two_users_")]


def test_every_framework_has_a_two_user_example() -> None:
    frameworks = {"langchain", "strands", "openai_agents", "agentcore"}
    assert {name.removeprefix("two_users_").removesuffix(".py") for name in TWO_USERS} == frameworks


@pytest.mark.parametrize("name", TWO_USERS)
def test_two_users_keep_separate_budgets(name: str, runs: dict[str, subprocess.Popen[str]]) -> None:
    out, _ = runs[name].communicate(timeout=120)
    assert runs[name].returncode == 0, out
    # 10 and 5 USD, two 4 USD reports each: Alice buys both, Bob one.
    assert "Server: alice has 2.00 USD left." in out, out
    assert "Server: bob has 1.00 USD left." in out, out
    assert "no payment session is available" in out, out  # Carol has none: blocked
