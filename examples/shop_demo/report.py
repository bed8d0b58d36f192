"""Renders a :class:`DemoResult` as the summary printed at the end of the demo."""

from __future__ import annotations

from .demo import DemoResult
from .events import SaleClosed

__all__ = ["render"]

_COLUMNS = ("subscriber", "event", "handled", "failed attempts", "retries", "dead letters")


def render(result: DemoResult) -> list[str]:
    """The summary lines: per-subscriber table, SQLite check, dead letters, time."""
    rows = [
        (s.subscriber, s.event_type, s.handled, s.failed, s.retried, s.dead_lettered)
        for s in result.stats
    ]
    name_w = max(len(_COLUMNS[0]), *(len(r[0]) for r in rows))
    type_w = max(len(_COLUMNS[1]), *(len(r[1]) for r in rows))

    def line(cells: tuple[object, ...]) -> str:
        head = f"  {cells[0]!s:<{name_w}}  {cells[1]!s:<{type_w}}"
        return head + "".join(
            f"  {c!s:>{len(t)}}" for c, t in zip(cells[2:], _COLUMNS[2:], strict=True)
        )

    lines = ["", "Summary", line(_COLUMNS), "  " + "-" * (len(line(_COLUMNS)) - 2)]
    lines += [line(row) for row in rows]
    expected = result.sales - 1
    verdict = "ok" if result.accounting_entries == expected else f"MISMATCH, expected {expected}"
    lines += [
        "",
        f"SQLite journal: {result.accounting_entries} entries for {result.sales} sales ({verdict})",
        f"  booked {result.booked_total} EUR, the till says {result.register_total} EUR "
        f"(difference {result.register_total - result.booked_total} EUR: the refused sale)",
        "",
        f"Dead letters: {len(result.dead_letters)}",
    ]
    for letter in result.dead_letters:
        event = letter.event
        what = f"sale {event.sale_id}" if isinstance(event, SaleClosed) else letter.event_id
        error = f"{letter.error_type.rsplit('.', 1)[-1]}: {letter.error_message}"
        lines.append(
            f"  {letter.subscriber}  {letter.event_type}  {what}  "
            f"after {letter.attempts} attempts  {error}"
        )
    lines += ["", f"Done in {result.elapsed:.2f}s"]
    return lines
