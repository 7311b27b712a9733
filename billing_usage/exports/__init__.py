"""Exports of billing cycles: each client's cycle statement as CSV and JSON (the same figures, reconciled
to the cent with fct_cycle_usage + adjustments before anything is written) and a FOCUS 1.2 cost-and-usage
file per cycle. A statement whose provider has a coverage ERROR over the cycle is not written: a BLOCKED
note says why, and the report counts it.

data.py reads (one snapshot), statements.py and focus.py shape, files.py writes. `make export` and the
Dagster assets in dagster_project/exports.py both go through export_cycles().
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from billing_usage.exports import files, focus
from billing_usage.exports.data import Cycle, CycleData, ExportError, ExportReader
from billing_usage.exports.statements import CSV_COLUMNS, Statement, build_statement
from billing_usage.locks import advisory_lock
from billing_usage.settings import get_settings
from billing_usage.warehouse import Warehouse

EXPORTS_DIR_ENV = "BILLING_USAGE_EXPORTS_DIR"
AGENCY_NAME_ENV = "BILLING_USAGE_AGENCY_NAME"
_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_CYCLE_ID = re.compile(r"^[0-9a-f]{32}$")

__all__ = ["Cycle", "CycleData", "ExportError", "ExportReader", "ExportReport", "default_exports_dir",
           "export_cycles", "read_cycles", "selector"]


def default_exports_dir() -> Path:
    """BILLING_USAGE_EXPORTS_DIR, else exports/ under the local folder (.local by default)."""
    configured = os.environ.get(EXPORTS_DIR_ENV)
    return Path(configured) if configured else get_settings().local_dir / "exports"


def agency_name() -> str:
    """Who invoices the clients, in FOCUS's ProviderName and InvoiceIssuerName."""
    return (os.environ.get(AGENCY_NAME_ENV) or "").strip() or "Agency"


def selector(argument: str, now: datetime):
    """CYCLE=YYYY-MM (every client's cycle starting that month, local date) or a cycle id, as a function
    of an ExportReader returning the cycles."""
    argument = (argument or "").strip()
    if _MONTH.match(argument):
        month = date.fromisoformat(f"{argument}-01")

        def in_month(reader: ExportReader) -> list[Cycle]:
            cycles = reader.cycles_starting_in_month(month, now)
            if not cycles:
                raise ExportError(f"no billing cycle starts in {argument} (and has started by {now:%Y-%m-%d})")
            return cycles
        return in_month
    if _CYCLE_ID.match(argument):
        return lambda reader: [reader.cycle(argument)]
    raise ExportError(f"CYCLE must be a month (YYYY-MM) or a cycle id (32 hex digits), got {argument!r}")


def read_cycles(warehouse: Warehouse, select, holder: str, wait_seconds: float) -> list[CycleData]:
    """Read the selected cycles between two model builds (under the build's lock), so statement lines and
    marts come from the same build."""
    with advisory_lock(warehouse, "dbt:build", holder, wait_seconds) as lock:
        if not lock.acquired:
            raise ExportError(f"export {lock.skip_message}")
        connection = warehouse.connect()
        try:
            reader = ExportReader(connection)
            return reader.read(select(reader))
        finally:
            connection.close()


@dataclass
class ExportReport:
    out_dir: Path
    written: list[tuple[Statement, Path, Path]] = field(default_factory=list)  # statement, JSON, CSV
    blocked: list[tuple[Statement, Path]] = field(default_factory=list)  # statement, its BLOCKED note
    focus_files: list[Path] = field(default_factory=list)
    focus_rows: int = 0
    focus_billed_cost: Decimal = Decimal(0)

    def blocked_lines(self) -> list[str]:
        return [f"{statement.cycle.client_id} cycle {statement.cycle.local_start_date} ({statement.cycle.cycle_id}): "
                f"coverage error, {'; '.join(statement.blocked_by)}" for statement, _ in self.blocked]

    def lines(self) -> list[str]:
        lines = [f"Exports in {self.out_dir}:"]
        for statement, json_path, _ in self.written:
            cycle = statement.cycle
            lines.append(f"  {cycle.client_id:<14} {cycle.local_start_date} to {cycle.local_end_date}  "
                         f"{statement.status:<8} {focus.decimal_text(statement.total_cost_usd):>14} USD  "
                         f"{json_path.relative_to(self.out_dir).with_suffix('')}.json/.csv")
        lines += [f"  BLOCKED {line}" for line in self.blocked_lines()]
        if self.focus_files:
            lines.append(f"FOCUS {focus.FOCUS_VERSION}: {len(self.focus_files)} file(s), {self.focus_rows} charge(s), "
                         f"BilledCost {focus.decimal_text(self.focus_billed_cost)} USD under {self.out_dir / 'focus'}")
        lines.append(f"{len(self.written)} statement(s) written, {len(self.blocked)} blocked by a coverage error"
                     + (" (not written: see the BLOCKED lines and notes)" if self.blocked else ""))
        return lines


def export_cycles(cycles: list[CycleData], out_dir: Path, now: datetime, statements: bool = True,
                  focus_files: bool = True) -> ExportReport:
    """Write the statements and FOCUS files of `cycles` (all checked before the first file is written)."""
    report = ExportReport(out_dir=out_dir)
    built = [build_statement(data, now) for data in cycles]
    charges = [focus.charge_rows(data, agency_name()) for data in cycles] if focus_files else []
    for statement, rows in zip(built, charges, strict=False):
        try:
            focus.validate_rows(focus.HEADER, rows)
        except focus.FocusError as exc:
            raise ExportError(f"FOCUS rows of cycle {statement.cycle.cycle_id} do not conform: {exc}") from None
        billed = sum((Decimal(row["BilledCost"]) for row in rows), Decimal(0))
        if billed != statement.total_cost_usd:
            raise ExportError(f"FOCUS BilledCost of cycle {statement.cycle.cycle_id} ({billed}) differs from its "
                              f"statement ({statement.total_cost_usd})")

    if statements:
        for statement in built:
            stem = files.cycle_stem(out_dir, "statements", statement.cycle)
            note = stem.with_name(stem.name + files.BLOCKED_SUFFIX)
            json_path, csv_path = stem.with_suffix(".json"), stem.with_suffix(".csv")
            if statement.blocked_by:  # the previous version must not pass for the current one
                json_path.unlink(missing_ok=True)
                csv_path.unlink(missing_ok=True)
                files.write_text(note, "Not exported: a coverage ERROR over this cycle.\n"
                                 + "".join(f"{reason}\n" for reason in statement.blocked_by))
                report.blocked.append((statement, note))
                continue
            files.write_json(json_path, statement.document)
            files.write_csv(csv_path, CSV_COLUMNS, statement.csv_rows)
            note.unlink(missing_ok=True)
            report.written.append((statement, json_path, csv_path))
    for statement, rows in zip(built, charges, strict=False):
        path = files.cycle_stem(out_dir, "focus", statement.cycle).with_suffix(".csv")
        report.focus_files.append(files.write_csv(path, focus.HEADER, rows))
        report.focus_rows += len(rows)
        report.focus_billed_cost += sum((Decimal(row["BilledCost"]) for row in rows), Decimal(0))
    if charges:
        files.write_json(out_dir / "focus" / "focus_metadata.json", focus.metadata("billing-usage"))
    return report
