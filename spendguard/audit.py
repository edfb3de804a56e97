"""A tamper-evident audit trail: decision records as hash-chained JSON lines.

:class:`JsonlSink` appends one JSON object per record and line. Each line carries ``prev``,
the ``hash`` of the line before it (:data:`GENESIS` for the first), and its own ``hash``:
``sha256(prev + "\\n" + body)``, where ``body`` is the record's canonical JSON (sorted keys,
no spaces). :func:`verify` (``spendguard audit verify FILE``) recomputes the chain, so an
edited line (its hash no longer matches), a deleted, inserted or moved line (the next line
no longer follows), or a damaged one is found, and named by its line number.

What a chain cannot show by itself is the loss of its *last* lines: keep the head hash that
:func:`verify` reports somewhere else (a log, a ticket) and check it later with
``expect_head`` (``--head``).

The sink is thread-safe. Several processes must not append to one file (each would chain
to the line it last wrote): give each process its own file.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from spendguard._errors import InvalidArgumentError
from spendguard.events import DecisionRecord, record_from_dict

__all__ = ["GENESIS", "AuditCheck", "JsonlSink", "read_records", "verify"]

#: The ``prev`` of a file's first line.
GENESIS = "0" * 64
_TAIL = 1 << 16


def _body(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hash(prev: str, body: str) -> str:
    return hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest()


class JsonlSink:
    """Appends every record to a hash-chained JSON lines file (created if missing).

    An existing file is continued: the first new line chains to its last line.

    Args:
        path: The file.
        fsync: Also ``os.fsync`` after each line (survives a power cut; much slower). Each
            line is always flushed to the operating system before :meth:`emit` returns.

    Raises:
        InvalidArgumentError: The file's last line is not a chained record (verify it).
        OSError: The file cannot be opened for appending.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._lock = threading.Lock()
        self._prev = _last_hash(self.path)
        self._file = self.path.open("a", encoding="utf-8")

    def emit(self, record: DecisionRecord) -> None:
        """Append ``record`` as one chained line."""
        body = _body(record.to_dict())  # canonical: what the hash covers
        with self._lock:
            prev = self._prev
            digest = _hash(prev, body)
            # The line is the body with the chain's two fields added at its end.
            self._file.write(f'{body[:-1]},"prev":"{prev}","hash":"{digest}"}}\n')
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())
            self._prev = digest

    @property
    def head(self) -> str:
        """The hash of the last line written (the chain's head)."""
        with self._lock:
            return self._prev

    def close(self) -> None:
        """Close the file; later records raise ``ValueError`` (and are logged by the guard)."""
        with self._lock:
            self._file.close()

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.path)!r})"


def _last_hash(path: Path) -> str:
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - _TAIL))
            tail = file.read()
    except FileNotFoundError:
        return GENESIS
    lines = [line for line in tail.split(b"\n") if line.strip()]
    if not lines:
        return GENESIS
    try:
        digest = json.loads(lines[-1])["hash"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgumentError(
            f"{path}: the last line is not a chained record; run `spendguard audit verify`",
            argument="path",
        ) from exc
    if not isinstance(digest, str):
        raise InvalidArgumentError(f"{path}: the last line's hash is not text", argument="path")
    return digest


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """What :func:`verify` found.

    Attributes:
        ok: Whether every line is intact and chained (and the head is the one expected).
        records: How many lines were checked before the first problem (all, when ok).
        head: The hash of the last intact line (:data:`GENESIS` for an empty file).
        line: The 1-based number of the first bad line, None when ok (or when only the
            expected head differs).
        problem: What is wrong, None when ok.
    """

    ok: bool
    records: int
    head: str
    line: int | None = None
    problem: str | None = None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", newline="\n") as file:
        for number, line in enumerate(file, start=1):
            yield number, line.rstrip("\n")


def verify(path: str | os.PathLike[str], *, expect_head: str | None = None) -> AuditCheck:
    """Check a :class:`JsonlSink` file's chain, line by line.

    Args:
        path: The file.
        expect_head: The head hash a previous check reported: if given, the file must still
            end with that line or continue from it (a file cut short fails).

    Returns:
        The first problem found, or that the file is intact.

    Raises:
        OSError: The file cannot be read.
    """
    prev = GENESIS
    count = 0
    seen_head = expect_head is None or expect_head == GENESIS
    for number, text in _lines(Path(path)):
        problem = _check_line(text, prev, number)
        if problem is not None:
            return AuditCheck(False, count, prev, number, problem)
        prev = json.loads(text)["hash"]
        count += 1
        seen_head = seen_head or prev == expect_head
    if not seen_head:
        problem = f"the expected head {expect_head} is not in the file: lines were removed"
        return AuditCheck(False, count, prev, None, problem)
    return AuditCheck(True, count, prev)


def _check_line(text: str, prev: str, number: int) -> str | None:
    try:
        fields = json.loads(text)
    except ValueError:
        return "not a JSON line (damaged or cut short)"
    if not isinstance(fields, dict) or not isinstance(fields.get("hash"), str):
        return "not a chained record (no hash)"
    claimed_prev = fields.pop("prev", None)
    claimed = fields.pop("hash")
    if claimed_prev != prev:
        before = "the start of the file" if number == 1 else f"line {number - 1}"
        return (
            f"does not follow {before}: a line was deleted, inserted or moved here "
            f"(or {before} was rewritten)"
        )
    if _hash(prev, _body(fields)) != claimed:
        return "its content does not match its hash: the line was edited"
    return None


def read_records(path: str | os.PathLike[str]) -> list[DecisionRecord]:
    """The records of a :class:`JsonlSink` file, in order (the chain is not checked: see
    :func:`verify`).

    Raises:
        ValueError: A line is not a record.
        OSError: The file cannot be read.
    """
    records = []
    for number, text in _lines(Path(path)):
        if not text.strip():
            continue
        try:
            records.append(record_from_dict(json.loads(text)))
        except ValueError as exc:
            raise ValueError(f"{path}: line {number}: {exc}") from exc
    return records
