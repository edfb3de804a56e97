"""Without LangChain installed, importing the integration says what to install."""

from __future__ import annotations

import importlib
import sys

import pytest


def test_missing_langchain_raises_import_error_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in {"langchain", "langchain_core"}:
            monkeypatch.setitem(sys.modules, name, None)  # None makes `import name` fail
        elif name.split(".")[0] == "spendguard_langchain":
            monkeypatch.delitem(sys.modules, name)

    with pytest.raises(ImportError, match=r'pip install "spendguard\[langchain\]"'):
        importlib.import_module("spendguard_langchain")
