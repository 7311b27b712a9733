"""An explicit range of UTC days to collect again, instead of the cursor's window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime


# Not dlt.sources.incremental(end_value=...): the providers filter these days; it would only add per-record work.
@dataclass(frozen=True)
class Backfill:
    """Days [start, end): collectors read exactly these and leave their cursors where they were."""

    start: date
    end: date

    @classmethod
    def of(cls, start: str | None, end: str | None) -> Backfill | None:
        if not start and not end:
            return None
        if not (start and end):
            raise ValueError("a backfill needs both backfill_start and backfill_end (ISO dates, end exclusive)")
        window = cls(date.fromisoformat(start), date.fromisoformat(end))
        if window.end <= window.start:
            raise ValueError(f"empty backfill window {start} .. {end}")
        return window

    def _ms(self, day: date) -> int:
        return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)

    @property
    def start_ms(self) -> int:
        return self._ms(self.start)

    @property
    def end_ms(self) -> int:
        return self._ms(self.end)
