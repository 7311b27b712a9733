"""OpenRouter imitation: /activity, /keys and /credits, which all need a management key."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from sandbox.agency import clients
from sandbox.config import SandboxConfig, stable_hex
from sandbox.http_types import ApiError, Request, Response
from sandbox.records import GeneratedRecords

ACTIVITY_DAYS = 30
KEYS_PAGE = 100


def error(status: int, message: str) -> ApiError:
    return ApiError(status, {"error": {"code": status, "message": message}})


def error_body(status: int) -> dict:
    messages = {429: "Rate limit exceeded", 502: "Bad Gateway", 503: "Service Unavailable"}
    return error(status, messages.get(status, "Internal Server Error")).response.body


def authenticate(config: SandboxConfig, request: Request) -> None:
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Bearer "):
        raise error(401, "Missing Authentication header")
    if auth != f"Bearer {config.openrouter_management_key}":
        if auth.startswith("Bearer sk-or-v1-"):
            raise error(403, "Only management keys can perform this operation")
        raise error(401, "No auth credentials found")


def _activity_window(config: SandboxConfig) -> list[date]:
    """The last 30 completed UTC days before the sandbox's today."""
    return [config.today - timedelta(days=n) for n in range(ACTIVITY_DAYS, 0, -1)]


def _activity(config: SandboxConfig, request: Request, records: GeneratedRecords) -> Response:
    window = _activity_window(config)
    days = window
    if request.arg("date"):
        try:
            day = date.fromisoformat(request.arg("date"))
        except ValueError as exc:
            raise error(400, "Invalid request parameters") from exc
        if day not in window:
            raise error(400, "Date must be within the last 30 (completed) UTC days")
        days = [day]
    key_hash = request.arg("api_key_hash")
    all_clients = clients(config)
    selected = [c for c in all_clients if key_hash in (None, c.openrouter_key_hash)]
    if key_hash and not selected:
        raise error(404, "API key not found")
    rows = []
    for day in days:
        if not config.start_date <= day <= config.end_date:
            continue
        per_client = [row for c in selected for row in records.openrouter_activity(c.index, day)]
        rows += per_client if key_hash else _summed_over_keys(per_client)
    return Response(200, {"data": rows})


def _summed_over_keys(rows: list[dict]) -> list[dict]:
    summed: dict[tuple, dict] = {}
    totals: dict[tuple, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        key = (row["date"], row["model_permaslug"], row["endpoint_id"])
        summed.setdefault(key, dict(row))
        for field in ("usage", "byok_usage_inference", "requests", "prompt_tokens", "completion_tokens",
                      "reasoning_tokens", "cached_tokens"):
            totals[key][field] += Decimal(str(row[field]))
    for key, row in summed.items():
        for field, value in totals[key].items():
            row[field] = float(value) if field in ("usage", "byok_usage_inference") else int(value)
    return list(summed.values())


def default_workspace_id(config: SandboxConfig) -> str:
    """The agency's default OpenRouter workspace, which holds every key."""
    return str(uuid.UUID(stable_hex(config.seed, "openrouter-workspace")))


def _key_object(config: SandboxConfig, client, records: GeneratedRecords) -> dict:
    usage = float(sum(
        (Decimal(str(row["usage"])) for day in config.iter_days()
         for row in records.openrouter_activity(client.index, day)), Decimal(0)))
    created = f"{config.start_date.isoformat()}T00:00:00Z"
    return {
        "hash": client.openrouter_key_hash,
        "name": client.openrouter_key_name,
        "label": f"sk-or-v1-{client.openrouter_key_hash[:3]}...{client.openrouter_key_hash[-3:]}",
        "disabled": False,
        "limit": None,
        "limit_remaining": None,
        "limit_reset": None,
        "include_byok_in_limit": False,
        "usage": usage,
        "usage_daily": 0.0,
        "usage_weekly": 0.0,
        "usage_monthly": 0.0,
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
        "created_at": created,
        "updated_at": created,
        "expires_at": None,
        "creator_user_id": None,
        "workspace_id": default_workspace_id(config),  # the SDK requires a string: every key has a workspace
        "external_user": None,
        "last_used_at": f"{config.end_date.isoformat()}T23:59:00Z",
    }


def _keys(config: SandboxConfig, request: Request, records: GeneratedRecords) -> Response:
    try:
        offset = int(request.arg("offset", "0"))
    except ValueError as exc:
        raise error(400, "Invalid request parameters") from exc
    page = clients(config)[offset:offset + KEYS_PAGE]
    return Response(200, {"data": [_key_object(config, c, records) for c in page]})


def _credits(config: SandboxConfig, records: GeneratedRecords) -> Response:
    total = sum(
        (Decimal(str(row["usage"])) for day in config.iter_days() for c in clients(config)
         for row in records.openrouter_activity(c.index, day)), Decimal(0))
    return Response(200, {"data": {"total_credits": float(total.to_integral_value() + 100),
                                   "total_usage": float(total)}})


def handle(config: SandboxConfig, request: Request, records: GeneratedRecords) -> Response:
    authenticate(config, request)
    routes = {
        "/api/v1/activity": lambda: _activity(config, request, records),
        "/api/v1/keys": lambda: _keys(config, request, records),
        "/api/v1/credits": lambda: _credits(config, records),
    }
    if request.method != "GET" or request.path not in routes:
        raise error(404, f"Not found: {request.method} {request.path}")
    return routes[request.path]()
