"""Writes the agency's page and one page per client, from one read-only snapshot of the warehouse.

Layout: <report dir>/<last day of the window>/agency.html and .../clients/<client id>.html. Each file is
written whole and then renamed into place, so a reader never sees half a page.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import psycopg2.extensions

from billing_usage.settings import get_settings
from billing_usage.warehouse import Warehouse
from usage_report.data import (
    DEFAULT_WINDOW_DAYS,
    UNATTRIBUTED,
    ReportError,
    load_clients,
    load_report,
    missing_relations,
    window_for,
)
from usage_report.page import render_page

REPORT_DIR_ENV = "BILLING_USAGE_REPORT_DIR"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,80}")


@dataclass(frozen=True)
class ReportFiles:
    directory: Path
    agency: Path
    clients: dict[str, Path]  # client id -> its page
    as_of: datetime
    window_start: date
    window_end: date


def default_report_dir() -> Path:
    """BILLING_USAGE_REPORT_DIR, else reports/ under the local folder (.local by default)."""
    configured = os.environ.get(REPORT_DIR_ENV)
    return Path(configured) if configured else get_settings().local_dir / "reports"


def client_file_name(client_id: str) -> str:
    """A file name that is the client id when the id is a plain name, else a slug plus a hash of the id."""
    if _SAFE_NAME.fullmatch(client_id):
        return f"{client_id}.html"
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", client_id).strip("-")[:40] or "client"
    return f"{slug}-{hashlib.sha256(client_id.encode()).hexdigest()[:10]}.html"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_reports(warehouse: Warehouse, out_dir: Path, as_of: datetime, window_days: int = DEFAULT_WINDOW_DAYS,
                  client_ids: list[str] | None = None) -> ReportFiles:
    """The agency's page and the pages of `client_ids` (default: every current client of dim_clients)."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must carry a time zone")
    _, window_end = window_for(as_of, window_days)
    directory = out_dir / window_end.isoformat()
    connection = warehouse.connect()
    try:
        # one snapshot for every page: a build finishing meanwhile cannot make the pages disagree
        connection.set_session(readonly=True, isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ)
        with connection.cursor() as cursor:
            missing = missing_relations(cursor)
            if missing:
                raise ReportError(f"the warehouse has no {', '.join(missing)}: build the models first "
                                  "(make demo, or the build_models job)")
            clients = load_clients(cursor)
            known = {c.client_id: c for c in clients}
            if client_ids is not None:
                unknown = sorted(set(client_ids) - set(known))
                if unknown:
                    raise ReportError(f"unknown client id(s): {', '.join(unknown)} (see marts.dim_clients)")
            chosen = [known[c] for c in client_ids] if client_ids is not None else \
                [c for c in clients if c.client_id != UNATTRIBUTED]
            links = {c.client_id: f"clients/{client_file_name(c.client_id)}" for c in chosen}
            agency = load_report(cursor, as_of, None, clients, window_days)
            pages = {c.client_id: render_page(load_report(cursor, as_of, c, clients, window_days)) for c in chosen}
    finally:
        connection.close()
    client_paths = {}
    for client_id, html in pages.items():
        client_paths[client_id] = directory / links[client_id]
        _write_atomically(client_paths[client_id], html)
    agency_path = directory / "agency.html"
    _write_atomically(agency_path, render_page(agency, links))
    return ReportFiles(directory, agency_path, client_paths, as_of, agency.window_start, agency.window_end)
