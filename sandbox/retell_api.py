"""Retell AI imitation: POST /v3/list-calls and GET /v2/get-call/{call_id}, Bearer API key per workspace."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from sandbox.agency import clients
from sandbox.config import SandboxConfig, stable_hex
from sandbox.http_types import ApiError, Request, Response
from sandbox.paging import decode_cursor, encode_cursor, page_through_days
from sandbox.records import GeneratedRecords
from sandbox.usage import client_day

MAX_LIMIT = 1000
SUPPORTED_FILTERS = {"start_timestamp", "agent"}
GET_CALL = re.compile(r"^/v2/get-call/([^/]+)$")


def error(status: int, message: str) -> ApiError:
    return ApiError(status, {"status": "error", "message": message})


def error_body(status: int) -> dict:
    if status == 429:
        return {"status": "error", "message": "Account rate limited, please throttle your requests."}
    return {"status": "error", "message": "Internal Server Error"}


def authenticate(config: SandboxConfig, request: Request) -> int:
    """The workspace whose API key the request carries."""
    auth = request.headers.get("authorization", "")
    for workspace in range(config.retell_workspaces):
        if auth == f"Bearer {config.retell_api_key(workspace)}":
            return workspace
    raise error(401, "Invalid API key")


def _timestamp_bounds(condition: dict | None) -> tuple[int, int]:
    """[low, high] epoch milliseconds from a v3 number or range condition."""
    low, high = 0, 2**63
    if not condition:
        return low, high
    op, value = condition.get("op"), condition.get("value")
    try:
        if op == "bt":
            low, high = int(value[0]), int(value[1])
        elif op in ("ge", "gt"):
            low = int(value) + (op == "gt")
        elif op in ("le", "lt"):
            high = int(value) - (op == "lt")
        elif op == "eq":
            low = high = int(value)
        else:
            raise ValueError(op)
    except (TypeError, ValueError, IndexError) as exc:
        raise error(400, f"invalid start_timestamp filter: {condition!r}") from exc
    return low, high


def _day_of(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def list_calls(config: SandboxConfig, request: Request, records: GeneratedRecords) -> Response:
    workspace = authenticate(config, request)
    try:
        body = json.loads(request.body or b"{}")
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
    except ValueError as exc:
        raise error(400, f"invalid JSON body: {exc}") from exc
    criteria = body.get("filter_criteria") or {}
    unsupported = set(criteria) - SUPPORTED_FILTERS
    if unsupported:
        raise error(400, f"filter not supported by the sandbox: {sorted(unsupported)}")
    limit = body.get("limit", 50)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise error(400, f"limit must be an integer between 1 and {MAX_LIMIT}")
    if body.get("pagination_key") and body.get("skip"):
        raise error(400, "skip and pagination_key cannot be used together")
    descending = body.get("sort_order", "descending") == "descending"
    low, high = _timestamp_bounds(criteria.get("start_timestamp"))
    agent_ids = {a["agent_id"] for a in criteria.get("agent", [])}

    first = max(config.start_date, _day_of(low)) if low > 0 else config.start_date
    last = min(config.end_date, _day_of(min(high, 253402300799000)))
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    if descending:
        days.reverse()
    workspace_clients = [c.index for c in clients(config) if c.retell_workspace == workspace]

    def merge_day(day: date) -> list[dict]:
        calls = [
            call
            for index in workspace_clients
            for call in records.client_day(index, day, client_day).retell_calls
            if low <= call["start_timestamp"] <= high and (not agent_ids or call["agent_id"] in agent_ids)
        ]
        calls.sort(key=lambda c: (c["start_timestamp"], c.get("call_id", "")), reverse=descending)
        return calls

    def calls_of_day(day: date) -> list[dict]:
        listing = ("retell", client_day, workspace, day, low, high, frozenset(agent_ids), descending)
        return records.merged(listing, lambda: merge_day(day))

    cursor = (0, 0)
    if body.get("pagination_key"):
        try:
            cursor = decode_cursor(body["pagination_key"])
        except ValueError as exc:
            raise error(400, str(exc)) from exc
    items, next_cursor = page_through_days(days, calls_of_day, limit, cursor)
    page = {
        "items": items,
        "has_more": next_cursor is not None,
        "pagination_key": encode_cursor(*next_cursor) if next_cursor else None,
    }
    if body.get("include_total") is True:  # the SDK: `total` is only present when asked for
        page["total"] = sum(len(calls_of_day(day)) for day in days)
    return Response(200, page)


def generated_call_ids(config: SandboxConfig) -> Iterator[tuple[str, int, date]]:
    """(call_id, client index, day) of every call the config generates, derived as sandbox.usage derives
    them, without generating the calls."""
    for day in config.iter_days():
        for client in clients(config):
            for agent in client.agents:
                for k in range(config.calls_per_agent_per_day):
                    call_id = "call_" + stable_hex(config.seed, "call", day, client.index, agent.agent_id, k,
                                                   length=28)
                    yield call_id, client.index, day


@lru_cache(maxsize=4)
def call_locations(config: SandboxConfig) -> dict[str, tuple[int, date]]:
    """call_id -> (client index, day): the client-day to generate to find a call by id."""
    locations: dict[str, tuple[int, date]] = {}
    where = None
    for call_id, index, day in generated_call_ids(config):
        if where != (index, day):
            where = (index, day)  # one tuple per client-day, shared by its calls
        locations[call_id] = where
    return locations


def get_call(config: SandboxConfig, request: Request, call_id: str) -> Response:
    workspace = authenticate(config, request)
    location = call_locations(config).get(call_id)
    if location is not None:
        index, day = location
        if clients(config)[index].retell_workspace == workspace:
            for call in client_day(config, index, day).retell_calls:
                if call.get("call_id") == call_id:
                    return Response(200, call)
    raise error(404, "Call not found")


def handle(config: SandboxConfig, request: Request, records: GeneratedRecords) -> Response:
    if request.method == "POST" and request.path == "/v3/list-calls":
        return list_calls(config, request, records)
    by_id = GET_CALL.match(request.path)
    if request.method == "GET" and by_id:
        return get_call(config, request, by_id.group(1))
    raise error(404, f"no route {request.method} {request.path}")
