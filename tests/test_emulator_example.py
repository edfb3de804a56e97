"""examples/emulator_quickstart.py runs offline and does what it says."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from spendguard.emulator import ENDPOINT_ENV_VAR

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "emulator_quickstart.py"


def test_quickstart_pays_twice_then_blocks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENDPOINT_ENV_VAR, raising=False)  # restored after the test
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "call 1: paid 0.04 USD, 0.06 USD left"
    assert lines[1] == "call 2: paid 0.04 USD, 0.02 USD left"
    assert lines[2].startswith("call 3: blocked -> Payment blocked")
    assert lines[3] == "server says 0.02 USD left"
