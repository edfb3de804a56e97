"""The public surface: a small sorted __all__, one error root, no framework imports."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import spendguard


def test_all_is_sorted_and_complete() -> None:
    assert spendguard.__all__ == sorted(spendguard.__all__)
    public = {
        name
        for name, value in vars(spendguard).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)  # submodules
    }
    assert public == set(spendguard.__all__)


def test_every_error_derives_from_the_root() -> None:
    errors = [getattr(spendguard, n) for n in spendguard.__all__ if n.endswith("Error")]
    assert len(errors) >= 10
    for error in errors:
        assert issubclass(error, spendguard.SpendGuardError)
    assert issubclass(spendguard.InvalidAmountError, ValueError)
    assert issubclass(spendguard.MalformedSessionError, ValueError)


def test_import_pulls_in_no_agent_framework_and_no_client() -> None:
    code = (
        "import sys, spendguard, spendguard.pricing;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'langchain', 'langchain_core', 'langgraph', 'strands', 'agents', 'openai',"
        " 'bedrock_agentcore', 'redis', 'boto3'}];"
        "print(','.join(sorted(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version  # noqa: PLC0415

    assert spendguard.__version__ == version("spendguard")


def test_the_library_logger_has_a_null_handler_and_no_last_resort_output() -> None:
    code = (
        "import logging, spendguard;"
        "logging.getLogger('spendguard').warning('should go nowhere');"
        "print([type(h).__name__ for h in logging.getLogger('spendguard').handlers])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['NullHandler']"
    assert out.stderr == ""
