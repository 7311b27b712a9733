"""Where exports go and how they are written: one folder per client, files named by the cycle's local start
date and id, each written whole (a reader sees the old file or the new one), a BLOCKED note in place of a
statement that a coverage error holds back.

    <exports>/statements/<client>/<YYYY-MM-DD>_<cycle_id>.json | .csv | .BLOCKED.txt
    <exports>/focus/<client>/<YYYY-MM-DD>_<cycle_id>.csv, <exports>/focus/focus_metadata.json
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path

BLOCKED_SUFFIX = ".BLOCKED.txt"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def client_folder(client_id: str) -> str:
    """The client id when it is a plain name, else a slug of it plus a hash (never a path of its own)."""
    if _SAFE_NAME.fullmatch(client_id):
        return client_id
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", client_id).strip("-")[:40] or "client"
    return f"{slug}-{hashlib.sha256(client_id.encode()).hexdigest()[:10]}"


def cycle_stem(out_dir: Path, kind: str, cycle) -> Path:
    return out_dir / kind / client_folder(cycle.client_id) / f"{cycle.local_start_date}_{cycle.cycle_id}"


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, document) -> Path:
    return write_text(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows([{name: "" if row.get(name) is None else row[name] for name in columns} for row in rows])
    return write_text(path, buffer.getvalue())


def blocked_cycle_ids(out_dir: Path) -> tuple[str, ...]:
    """Cycles whose statement a coverage error held back at the last export: the next run tries them again."""
    folder = out_dir / "statements"
    if not folder.is_dir():
        return ()
    return tuple(sorted(path.name[:-len(BLOCKED_SUFFIX)].split("_", 1)[1]
                        for path in folder.glob(f"*/*{BLOCKED_SUFFIX}")))
