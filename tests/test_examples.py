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
