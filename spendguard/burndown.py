"""What an audit trail says: per session and tool, what was allowed, blocked, spent and left.

:func:`summarize` reads decision records (e.g. :func:`spendguard.audit.read_records`);
:func:`render` prints the table ``spendguard report AUDIT.jsonl`` shows; :func:`plot` draws
the budget burn-down over time with every block marked (needs the ``plot`` extra:
matplotlib).

Counting rules: *allowed* counts calls admitted (``held`` and ``allowed`` records), *blocked*
counts ``blocked`` records, *spent* adds ``committed`` amounts and ``lapsed`` holds (the
ledger counts a lapsed hold as spent in full). *Left* is the session's limit less what was
spent, when a record carried the limit; spending outside the trail (another process, another
file) is not in it, which is why the report also shows the server's own figure at the last
read in the trail.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from spendguard.events import DecisionRecord

__all__ = ["BurnPoint", "SessionSummary", "ToolSummary", "plot", "render", "summarize"]

_ZERO = Decimal(0)


@dataclass(slots=True)
class ToolSummary:
    """One tool's line of the report.

    Attributes:
        tool: The tool's name (``"-"`` for charges that named none).
        allowed: Calls admitted.
        blocked: Calls refused.
        spent: Committed amounts plus lapsed holds.
    """

    tool: str
    allowed: int = 0
    blocked: int = 0
    spent: Decimal = _ZERO


@dataclass(frozen=True, slots=True)
class BurnPoint:
    """One step of the burn-down.

    Attributes:
        wall_time: When, epoch seconds.
        left: The limit less what was spent so far.
        usable: ``left`` less what was held for calls in flight.
        blocked_tool: For a block, the tool refused (None otherwise).
    """

    wall_time: float
    left: Decimal
    usable: Decimal
    blocked_tool: str | None = None


@dataclass(slots=True)
class SessionSummary:
    """One session's part of the report.

    Attributes:
        session_id: The payment session.
        currency: Its currency.
        limit: The session's limit, when a record carried it.
        tools: Per tool, in order of first appearance.
        server_available: The server's available amount at the last read in the trail.
        server_read_at: When that read was, epoch seconds.
        points: The burn-down (only when the limit is known).
    """

    session_id: str
    currency: str
    limit: Decimal | None = None
    tools: dict[str, ToolSummary] = field(default_factory=dict)
    server_available: Decimal | None = None
    server_read_at: float | None = None
    points: list[BurnPoint] = field(default_factory=list)

    @property
    def allowed(self) -> int:
        """Calls admitted, all tools."""
        return sum(t.allowed for t in self.tools.values())

    @property
    def blocked(self) -> int:
        """Calls refused, all tools."""
        return sum(t.blocked for t in self.tools.values())

    @property
    def spent(self) -> Decimal:
        """What was spent, all tools."""
        return sum((t.spent for t in self.tools.values()), _ZERO)

    @property
    def left(self) -> Decimal | None:
        """The limit less what was spent, None when the limit is unknown."""
        return None if self.limit is None else self.limit - self.spent


class _Book:
    """Replays one session's records."""

    def __init__(self, summary: SessionSummary) -> None:
        self.summary = summary
        self.held: dict[str, Decimal] = {}

    def tool(self, record: DecisionRecord) -> ToolSummary:
        name = record.tool or "-"
        return self.summary.tools.setdefault(name, ToolSummary(name))

    def apply(self, record: DecisionRecord) -> None:
        fields = record.to_dict()
        event = record.event
        limit = fields.get("limit")
        if limit is not None:
            self.summary.limit = Decimal(limit)
        if event in ("held", "allowed"):
            self.tool(record).allowed += 1
            if event == "held" and record.hold_id:
                self.held[record.hold_id] = Decimal(fields["amount"])
        elif event == "blocked":
            self.tool(record).blocked += 1
        elif event in ("committed", "lapsed"):
            self.tool(record).spent += Decimal(fields["amount"])
        elif event == "session_read":
            self.summary.server_available = Decimal(fields["server_available"])
            self.summary.server_read_at = record.wall_time
        if event in ("committed", "lapsed", "released") and record.hold_id:
            self.held.pop(record.hold_id, None)
        self.point(record)

    def point(self, record: DecisionRecord) -> None:
        left = self.summary.left
        if left is None or record.event not in _MOVES:
            return
        usable = left - sum(self.held.values(), _ZERO)
        blocked = (record.tool or "-") if record.event == "blocked" else None
        self.summary.points.append(BurnPoint(record.wall_time, left, usable, blocked))


_MOVES = frozenset({"held", "committed", "released", "lapsed", "blocked"})


def summarize(records: Iterable[DecisionRecord]) -> list[SessionSummary]:
    """Replay ``records`` (in the order they were written) into one summary per session."""
    books: dict[str, _Book] = {}
    for record in records:
        book = books.get(record.session_id)
        if book is None:
            book = books[record.session_id] = _Book(
                SessionSummary(record.session_id, record.currency)
            )
        book.apply(record)
    return [book.summary for book in books.values()]


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(summaries: Iterable[SessionSummary]) -> str:
    """The report as text: a table per session, a line per tool."""
    out: list[str] = []
    for s in summaries:
        limit = "unknown" if s.limit is None else f"{s.limit} {s.currency}"
        out.append(f"Payment session {s.session_id} (limit {limit})")
        out.append(f"  {'tool':<20} {'allowed':>8} {'blocked':>8} {'spent':>12}")
        for t in s.tools.values():
            out.append(f"  {t.tool:<20} {t.allowed:>8} {t.blocked:>8} {t.spent:>12}")
        out.append(f"  {'all tools':<20} {s.allowed:>8} {s.blocked:>8} {s.spent:>12}")
        left = "unknown (no record carried the limit)" if s.left is None else f"{s.left}"
        out.append(f"  left: {left} {s.currency}" if s.left is not None else f"  left: {left}")
        if s.server_available is not None and s.server_read_at is not None:
            out.append(
                f"  server: {s.server_available} {s.currency} available at its last read "
                f"({_utc(s.server_read_at)})"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def plot(summaries: Iterable[SessionSummary], path: str | os.PathLike[str]) -> None:
    """Draw each session's burn-down (what is left, and usable, over time), blocks marked
    with a red cross named by the tool, into an image file (PNG, SVG, PDF by its suffix).

    Raises:
        ImportError: matplotlib is missing (``pip install "spendguard[plot]"``).
    """
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        from matplotlib import pyplot  # noqa: PLC0415
    except ImportError as exc:
        hint = 'spendguard report --plot needs matplotlib: pip install "spendguard[plot]"'
        raise ImportError(hint) from exc
    sessions = [s for s in summaries if s.points]
    figure, axes = pyplot.subplots(
        max(1, len(sessions)), 1, figsize=(9, 3.6 * max(1, len(sessions))), squeeze=False
    )
    for axis, s in zip(axes[:, 0], sessions, strict=False):
        _draw(axis, s)
    if not sessions:
        axes[0, 0].text(0.5, 0.5, "no session with a known limit", ha="center", va="center")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def _draw(ax: Any, s: SessionSummary) -> None:  # ax: a matplotlib Axes
    start = s.points[0].wall_time
    times = [0.0, *(p.wall_time - start for p in s.points)]
    top = float(s.limit or 0)
    ax.step(
        times,
        [top, *(float(p.left) for p in s.points)],
        where="post",
        label="left (limit - spent)",
        color="tab:blue",
        linewidth=2,
    )
    ax.step(
        times,
        [top, *(float(p.usable) for p in s.points)],
        where="post",
        label="usable (left - held)",
        color="tab:orange",
        linestyle="--",
    )
    blocks = [(t, p) for t, p in zip(times[1:], s.points, strict=True) if p.blocked_tool]
    if blocks:
        ax.scatter(
            [t for t, _ in blocks],
            [float(p.usable) for _, p in blocks],
            marker="x",
            color="red",
            s=80,
            zorder=5,
            label="blocked",
        )
        for t, p in blocks:
            ax.annotate(
                p.blocked_tool,
                (t, float(p.usable)),
                textcoords="offset points",
                xytext=(4, 6),
                fontsize=8,
                color="red",
            )
    ax.set_title(f"{s.session_id}: budget burn-down ({s.currency})")
    ax.set_xlabel(f"seconds since {_utc(start)}")
    ax.set_ylabel(f"{s.currency} left")
    ax.set_ylim(bottom=0, top=top * 1.05 or None)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
