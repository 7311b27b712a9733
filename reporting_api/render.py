"""JSON and CSV bodies, ETags and conditional requests.

Money and quantities are decimal strings (never floats): a numeric from PostgreSQL is written in plain
notation with its own scale. JSON bodies get a strong ETag, the hash of the bytes sent; streamed CSV gets a
weak one, derived from the request, the token's scope and the warehouse's data version.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
JSON_MEDIA_TYPE = "application/json"
VARY = "Authorization, Accept"


def plain(value):
    """A value as it appears in JSON and CSV: decimals as strings, instants in RFC 3339."""
    if isinstance(value, Decimal):
        text = format(value, "f")
        return "0" if text in ("-0", "") else text
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def plain_row(columns: Iterable[str], values: dict) -> dict:
    return {column: plain(values[column]) for column in columns}


def _matches(request: Request, etag: str) -> bool:
    """If-None-Match with the weak comparison RFC 9110 prescribes for it."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == opaque for candidate in header.split(","))


def _headers(etag: str, refreshed: str | None) -> dict:
    headers = {"ETag": etag, "Vary": VARY, "Cache-Control": "private, no-cache"}
    if refreshed:
        headers["Data-Refreshed-At"] = refreshed
    return headers


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def json_response(request: Request, payload: dict) -> Response:
    body = orjson.dumps(payload)
    etag = strong_etag(body)
    headers = _headers(etag, payload.get("data_refreshed_at"))
    if _matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=JSON_MEDIA_TYPE, headers=headers)


def weak_etag(*parts: str) -> str:
    return 'W/"' + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40] + '"'


def cell(value) -> str:
    """A CSV field: the JSON value as text, null as empty."""
    if value is None:
        return ""
    if isinstance(value, Decimal | datetime | date):
        return plain(value)
    return str(value)


def csv_chunks(header: list[str], rows: Iterable[list]) -> Iterator[bytes]:
    """The header, then rows of already formatted fields, a few thousand per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for count, row in enumerate(rows, start=1):
        writer.writerow(row)
        if count % 2000 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def csv_response(request: Request, etag: str, refreshed: str | None, chunks: Iterator[bytes],
                 filename: str) -> Response:
    headers = _headers(etag, refreshed)
    if _matches(request, etag):
        return Response(status_code=304, headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return StreamingResponse(chunks, media_type=CSV_MEDIA_TYPE, headers=headers)
