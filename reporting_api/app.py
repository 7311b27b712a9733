"""The reporting API: usage, clients, cycles and statements, read from the marts.

    GET /v1/usage                                         usage per window x group (JSON or streamed CSV)
    GET /v1/clients                                       the clients the token sees
    GET /v1/clients/{client_id}/cycles                    a client's billing cycles, newest first
    GET /v1/clients/{client_id}/cycles/{cycle_id}/statement   one cycle's statement (JSON or CSV)

Every request needs a bearer token (reporting_api/tokens.py). Every response carries data_refreshed_at and
an ETag; lists are keyset-paginated; errors are problem+json naming the parameter at fault.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated

import psycopg2
from fastapi import FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from billing_usage.settings import utc_now
from reporting_api import params, queries, schemas, statements
from reporting_api.db import ConnectionPool
from reporting_api.problems import PROBLEM_MEDIA_TYPE, UNAUTHORIZED, Problem, invalid, not_found
from reporting_api.render import (
    cell,
    csv_chunks,
    csv_response,
    json_response,
    plain,
    strong_etag,
    weak_etag,
)
from reporting_api.tokens import Principal, verify
from reporting_api.usage import UsageQuery, usage_sql
from reporting_api.usage import windows as usage_windows

logger = logging.getLogger(__name__)

API_VERSION = "1.0.0"
DESCRIPTION = """Usage, billing cycles and statements of billing-usage, read from the dbt marts.

* Every request needs `Authorization: Bearer <token>` (`python -m cli.api_tokens create`). An agency token
  sees every client; a client token sees only its own (any other client id answers 404).
* Money and quantities are decimal strings, never floats.
* Every response carries `data_refreshed_at` (and a `Data-Refreshed-At` header) and an `ETag`; send it back
  in `If-None-Match` to get `304 Not Modified`.
* Lists take `limit` (1-1000) and `starting_after` (the `id` of the last row read) and answer `has_more`.
* Errors are `application/problem+json`; a bad parameter is named in `parameter`.
"""
PROBLEM_RESPONSES = {status: {"model": schemas.ProblemBody, "description": description,
                              "content": {PROBLEM_MEDIA_TYPE: {}}}
                     for status, description in ((400, "A bad parameter, named in `parameter`."),
                                                 (401, "Missing, invalid or revoked token."),
                                                 (404, "No such client or cycle (or not this token's)."))}
CSV_RESPONSE = {"content": {"text/csv": {"schema": {"type": "string"}}},
                "description": "CSV with the JSON rows' columns (Accept: text/csv or ?format=csv)."}
NOT_MODIFIED = {304: {"description": "Not modified: If-None-Match matched the ETag."}}

USAGE_PARAMETERS = ("from", "to", "window_size", "window_time_zone", "group_by", "client_id", "limit",
                    "starting_after", "format")
LIST_PARAMETERS = ("limit", "starting_after")

bearer = HTTPBearer(auto_error=False, description="A reporting API token: bu_<id>_<secret>.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
# Query parameters are declared as text for the OpenAPI document and read by reporting_api/params.py, after
# the token is checked, so that each error names its parameter.
From = Annotated[str | None, Query(alias="from", description="Start, inclusive: RFC 3339, or a date or a timestamp "
                                   "without offset read in window_time_zone. Required.")]
To = Annotated[str | None, Query(description="End, exclusive (same forms). Default: the end of the current day in "
                                 "window_time_zone.")]
WindowSize = Annotated[str | None, Query(description="hour | day | month | cycle (each client's billing cycles). "
                                         "Default: one window, the whole range.")]
WindowTimeZone = Annotated[str | None, Query(description="IANA zone the windows follow, DST included. Default UTC.")]
GroupBy = Annotated[list[str] | None, Query(description="Any of client, agent, provider, metric; repeat the "
                                            "parameter or separate with commas.")]
ClientId = Annotated[str | None, Query(description="Only this client.")]
UsageLimit = Annotated[str | None, Query(description="Rows per page, 1-1000 (default 100). CSV: every row unless "
                                         "given.")]
Limit = Annotated[str | None, Query(description="Rows per page, 1-1000 (default 100).")]
StartingAfter = Annotated[str | None, Query(description="The id of the last row of the previous page.")]
Format = Annotated[str | None, Query(description="json | csv (else the Accept header decides).")]


def _where(exc: BaseException) -> str:
    """Exception class and the line that raised it: never the message, which may quote a value."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"


def create_app(connect: Callable[..., object], now: Callable[[], datetime] = utc_now,
               pool_size: int = 8) -> FastAPI:
    """`connect(**options)` opens a psycopg2 connection to the warehouse."""
    pool = ConnectionPool(connect, size=pool_size)

    @asynccontextmanager
    async def lifespan(app):
        yield
        pool.close()

    app = FastAPI(title="billing-usage reporting API", version=API_VERSION, description=DESCRIPTION,
                  lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.pool = pool

    @app.exception_handler(Problem)
    async def problem(request: Request, exc: Problem) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> Response:
        error = exc.errors()[0] if exc.errors() else {}
        name = str(error.get("loc", ("", "request"))[-1])
        return invalid(name, error.get("msg", "invalid")).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return Problem(exc.status_code, str(exc.detail)).response()

    @app.exception_handler(psycopg2.errors.UndefinedTable)
    async def not_built(request: Request, exc: Exception) -> Response:
        return Problem(503, "the warehouse has not been built yet (make demo builds it)").response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.error("%s %s: unexpected %s", request.method, request.url.path, _where(exc))
        return Problem(500, "internal error").response()

    def authenticate(connection, credentials: HTTPAuthorizationCredentials | None) -> tuple[object, Principal]:
        cursor = connection.cursor()
        principal = verify(cursor, credentials.credentials if credentials else None)
        if principal is None:
            raise UNAUTHORIZED
        return cursor, principal

    def refreshed_at(cursor) -> datetime | None:
        return queries.data_refreshed_at(cursor)

    # ---------------------------------------------------------------- /v1/usage

    @app.get("/v1/usage", response_model=schemas.UsageList, tags=["usage"],
             responses={**PROBLEM_RESPONSES, **NOT_MODIFIED, 200: CSV_RESPONSE},
             summary="Usage per window and group")
    def usage(
        request: Request,
        credentials: Credentials,
        from_: From = None,
        to: To = None,
        window_size: WindowSize = None,
        window_time_zone: WindowTimeZone = None,
        group_by: GroupBy = None,
        client_id: ClientId = None,
        limit: UsageLimit = None,
        starting_after: StartingAfter = None,
        format: Format = None,
    ) -> Response:
        with pool.connection() as connection:
            cursor, principal = authenticate(connection, credentials)
            params.reject_unknown(request, USAGE_PARAMETERS)
            output = params.output_format(request)
            zone = params.time_zone(params.single(request, "window_time_zone"))
            refreshed = refreshed_at(cursor)
            start, end = params.range_(request, zone, now())
            size = params.window_size(params.single(request, "window_size"), start, end)
            groups = params.group_by(request)
            if size == "cycle" and "client" not in groups:
                groups = ("client", *groups)  # a cycle is a client's
            wanted = params.single(request, "client_id")
            if wanted is not None and not queries.client_visible(cursor, principal, wanted):
                raise Problem(404, "client_id: no such client", "client_id")
            query = UsageQuery(start, end, size, zone, groups, wanted if wanted is not None else principal.client_id,
                               limit=params.limit(request, default=None if output == "csv" else params.DEFAULT_LIMIT))
            query = replace(query, after=params.usage_position(params.single(request, "starting_after"),
                                                               len(query.key_columns), start, end))
            echo = {"from": plain(start.astimezone(zone)), "to": plain(end.astimezone(zone)), "window_size": size,
                    "window_time_zone": zone.key, "group_by": list(groups), "client_id": query.client_id}
            windows = usage_windows(cursor, query)
            if output == "csv":
                etag = weak_etag("usage", queries.data_version(cursor), plain(refreshed), repr(sorted(echo.items())),
                                 repr(query.after), str(query.limit), repr(windows))
                return csv_response(request, etag, plain(refreshed), _usage_csv(query, windows), "usage.csv")
            built = usage_sql(replace(query, limit=query.limit + 1), windows)
            found = []
            if built is not None:
                built.execute(cursor)
                found = [_usage_row(row, query, windows) for row in cursor.fetchall()]
            return json_response(request, _page(found, query.limit, refreshed, query=echo))

    def _usage_csv(query: UsageQuery, windows: list) -> Iterator[bytes]:
        """The CSV, streamed from a server-side cursor. Lazy: the connection is taken when the stream starts
        and given back when it ends or is abandoned (the generator's finally), never held by an unsent body."""
        connection = pool.acquire()
        broken = False
        try:
            refreshed = cell(refreshed_at(connection.cursor()))
            yield from csv_chunks([*query.columns, "data_refreshed_at"], [])  # the header
            built = usage_sql(query, windows, csv_lines=True)
            if built is None:
                return
            rows = connection.cursor(name="usage_csv")
            built.execute(rows, setup_cursor=connection.cursor())
            # each line: the window's fields, PostgreSQL's text of the rest, data_refreshed_at
            bounds = [",".join(cells) + "," for cells in _window_cells(query, windows)]
            ending = f",{refreshed}\r\n"
            while batch := rows.fetchmany(5000):
                yield "".join(bounds[window_index - 1] + line + ending for window_index, line in batch).encode()
        except psycopg2.OperationalError:
            broken = True
            raise
        finally:
            pool.release(connection, broken)

    # ---------------------------------------------------------------- /v1/clients

    @app.get("/v1/clients", response_model=schemas.ClientList, tags=["clients"],
             responses={**PROBLEM_RESPONSES, **NOT_MODIFIED}, summary="The clients this token sees")
    def list_clients(
        request: Request,
        credentials: Credentials,
        limit: Limit = None,
        starting_after: StartingAfter = None,
    ) -> Response:
        with pool.connection() as connection:
            cursor, principal = authenticate(connection, credentials)
            params.reject_unknown(request, LIST_PARAMETERS)
            page_size = params.limit(request)
            found = queries.clients(cursor, principal, params.single(request, "starting_after"), page_size + 1)
            clients = [_client(dict(zip(queries.CLIENT_COLUMNS, row, strict=True))) for row in found]
            return json_response(request, _page(clients, page_size, refreshed_at(cursor)))

    @app.get("/v1/clients/{client_id}/cycles", response_model=schemas.CycleList, tags=["clients"],
             responses={**PROBLEM_RESPONSES, **NOT_MODIFIED}, summary="A client's billing cycles, newest first")
    def list_cycles(
        request: Request,
        client_id: str,
        credentials: Credentials,
        limit: Limit = None,
        starting_after: StartingAfter = None,
    ) -> Response:
        with pool.connection() as connection:
            cursor, principal = authenticate(connection, credentials)
            params.reject_unknown(request, LIST_PARAMETERS)
            page_size = params.limit(request)
            if queries.client(cursor, principal, client_id) is None:
                raise not_found("client")
            refreshed = refreshed_at(cursor)
            found = statements.cycles(cursor, client_id, now(), params.single(request, "starting_after"),
                                      page_size + 1)
            return json_response(request, _page([_cycle(row) for row in found], page_size, refreshed))

    @app.get("/v1/clients/{client_id}/cycles/{cycle_id}/statement", response_model=schemas.Statement,
             tags=["clients"], responses={**PROBLEM_RESPONSES, **NOT_MODIFIED, 200: CSV_RESPONSE},
             summary="One cycle's statement")
    def statement(
        request: Request,
        client_id: str,
        cycle_id: str,
        credentials: Credentials,
        format: Format = None,
    ) -> Response:
        with pool.connection() as connection:
            cursor, principal = authenticate(connection, credentials)
            params.reject_unknown(request, ("format",))
            output = params.output_format(request)
            found_client = queries.client(cursor, principal, client_id)
            if found_client is None:
                raise not_found("client")
            found_cycle = statements.cycle(cursor, client_id, cycle_id, now())
            if found_cycle is None:
                raise not_found("cycle")
            document = statements.statement(cursor, found_client, found_cycle, principal.is_agency)
            # the freshness of the statement's providers, else of them all
            refreshed = found_cycle["data_refreshed_at"] or refreshed_at(cursor)
            if output == "csv":
                body = b"".join(csv_chunks(statements.CSV_COLUMNS, statements.csv_rows(document, refreshed)))
                return csv_response(request, strong_etag(body), plain(refreshed), iter([body]),
                                    f"statement_{client_id}_{found_cycle['local_start_date']}.csv")
            return json_response(request, statements.as_json(document, refreshed))

    return app


def _page(items: list[dict], page_size: int, refreshed: datetime | None, **extra) -> dict:
    """A list's envelope: the first `page_size` items (one more was read, to tell whether more follow)."""
    page, more = items[:page_size], len(items) > page_size
    return {"object": "list", "data": page, "has_more": more,
            "next_starting_after": page[-1]["id"] if more else None, **extra, "data_refreshed_at": plain(refreshed)}


def _window_cells(query: UsageQuery, windows: list) -> list[list[str]]:
    """Per window number - 1: its bounds in the window's zone (and its cycle), as JSON writes them (and CSV:
    no comma or quote in them)."""
    return [[plain(window.start.astimezone(query.zone)), plain(window.end.astimezone(query.zone)),
             *([window.cycle_id] if query.window_size == "cycle" else [])] for window in windows]


def _usage_row(row: tuple, query: UsageQuery, windows: list) -> dict:
    """One JSON row: the keyset id, then the columns ('' agent as null)."""
    window = windows[row[0] - 1]
    values = dict(zip(query.sql_columns, row[1:], strict=True))
    values.update(window_start=window.start.astimezone(query.zone), window_end=window.end.astimezone(query.zone),
                  cycle_id=window.cycle_id)
    key = [window.start.isoformat(), *(values[column] for column in query.key_columns)]
    shaped = {"id": params.encode_position(key)}
    for column in query.columns:
        value = values[column]
        shaped[column] = None if column == "agent_id" and value == "" else plain(value)
    return shaped


def _client(row: dict) -> dict:
    return {"id": row["client_id"], "name": row["client_name"], "billing_timezone": row["billing_timezone"],
            "billing_anchor_day": row["billing_anchor_day"], "currency": row["currency"]}


def _cycle(row: dict) -> dict:
    return statements.cycle_json(row)
