"""Every ```python block in README.md and docs/*.md runs as written, offline, on the emulator.

Each block runs in a fresh namespace, compiled as a module (so a top-level ``await`` is a
SyntaxError) with its markdown file and line numbers in tracebacks. HTML comments right before
a block, invisible on GitHub, say how it runs:

``<!-- prelude: NAME [budget=AMOUNT] -->``
    The names the reader fills in (session ids, a model, tools), from ``docs_preludes``.
    ``prelude: pytest-file`` means the block is a pytest file: it is run by pytest and its
    tests must pass.
``<!-- expect: TEXT -->``
    The block prints TEXT (where the doc promises output).
``<!-- not run: REASON -->``
    The block cannot run; kept to a minimum and listed by ``test_blocks_not_run``.

The docs point boto3 at ``http://127.0.0.1:8787``, the port ``spendguard emulator --port 8787``
listens on; the blocks reach this module's emulator on its free port instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from docs_preludes import PRELUDES, Context, isolate_aws
from redis_server import redis_server_fixture  # noqa: F401 - the redis prelude's server

from spendguard.emulator import PaymentsEmulator

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOC_PORT_URL = "http://127.0.0.1:8787"

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[^\s`]*)")
_COMMENT = re.compile(r"^\s*<!--\s*(?P<key>prelude|expect|not run)\s*:\s*(?P<value>.*?)\s*-->\s*$")
_PYTHONISH = {"py", "python3", "pycon", "ipython", "py3"}


@dataclass
class Block:
    """One fenced code block and the directives before it."""

    path: Path
    line: int  # 1-based line of the first code line
    lang: str
    code: str
    prelude: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    expect: list[str] = field(default_factory=list)
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _directives(lines: list[str], fence_index: int) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    i = fence_index - 1
    while i >= 0 and (match := _COMMENT.match(lines[i])):
        found.insert(0, (match["key"], match["value"]))
        i -= 1
    return found


def _blocks(path: Path) -> Iterator[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        block = Block(path, i + 2, opening["lang"].lower(), code)
        for key, value in _directives(lines, i):
            if key == "prelude":
                name, *options = value.split()
                block.prelude = name
                block.options = dict(option.split("=", 1) for option in options)
            elif key == "expect":
                block.expect.append(value)
            else:
                block.not_run = value
        yield block
        i = end + 1


ALL_BLOCKS = [block for path in DOCS for block in _blocks(path)]
PYTHON = [block for block in ALL_BLOCKS if block.lang == "python"]
RUN = [block for block in PYTHON if block.not_run is None]


def _param(block: Block) -> object:
    marks = [pytest.mark.redis] if block.prelude == "redis" else []
    return pytest.param(block, id=block.where, marks=marks)


@pytest.fixture(scope="module")
def docs_emulator() -> Iterator[PaymentsEmulator]:
    with PaymentsEmulator() as emulator:
        yield emulator


def test_the_docs_have_python_blocks() -> None:
    assert len(DOCS) >= 5
    assert len(PYTHON) >= 15


def test_no_python_block_escapes_under_another_fence_name() -> None:
    assert [b.where for b in ALL_BLOCKS if b.lang in _PYTHONISH] == []


def test_directives_sit_only_on_python_blocks_and_name_known_preludes() -> None:
    known = {*PRELUDES, "pytest-file"}
    stray = [b.where for b in ALL_BLOCKS if b.lang != "python" and (b.prelude or b.expect)]
    unknown = [b.where for b in PYTHON if b.prelude is not None and b.prelude not in known]
    assert (stray, unknown) == ([], [])
    assert all(set(b.options) <= {"budget"} for b in PYTHON)


def test_blocks_not_run() -> None:
    """The blocks that cannot run, each with its reason: keep this list short."""
    assert {b.where: b.not_run for b in PYTHON if b.not_run is not None} == {}


@pytest.mark.parametrize("block", [_param(b) for b in RUN])
def test_block_runs(
    block: Block,
    docs_emulator: PaymentsEmulator,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = block.code.replace(DOC_PORT_URL, docs_emulator.endpoint_url)
    if block.prelude == "pytest-file":
        _run_as_pytest_file(code, request, monkeypatch)
        return
    isolate_aws(monkeypatch)
    ctx = Context(docs_emulator, monkeypatch, request, **block.options)
    namespace = {"__name__": "docs_block"}
    if block.prelude is not None:
        namespace.update(PRELUDES[block.prelude](ctx))
    # Padding keeps the markdown's line numbers in tracebacks.
    compiled = compile("\n" * (block.line - 1) + code, str(block.path.relative_to(ROOT)), "exec")
    try:
        exec(compiled, namespace)
    finally:
        docs_emulator.faults.clear()
        docs_emulator.reset_clock()
    out = capsys.readouterr().out
    missing = [text for text in block.expect if text not in out]
    assert missing == [], out


def _run_as_pytest_file(
    code: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester: pytest.Pytester = request.getfixturevalue("pytester")
    # The block needs pytest alone; loading every installed plugin is most of the run's time.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_from_docs=code)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1, result.stdout.str()
    assert set(outcomes) <= {"passed"}, result.stdout.str()
