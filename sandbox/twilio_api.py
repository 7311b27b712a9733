"""Twilio REST 2010-04-01 imitation: Accounts, Calls, Messages and daily Usage Records, Basic auth; one Call
or Message by sid."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlencode

from sandbox.agency import clients
from sandbox.config import SandboxConfig, stable_hex
from sandbox.http_types import ApiError, Request, Response
from sandbox.paging import decode_cursor, encode_cursor, page_through_days
from sandbox.records import GeneratedRecords
from sandbox.retell_api import call_locations
from sandbox.usage import API_VERSION, USAGE_CATEGORIES, USAGE_SUBRESOURCES, client_day, rfc2822

MAX_PAGE_SIZE = 1000
ROUTE = re.compile(rf"^/{API_VERSION}/Accounts(?:/(AC[0-9a-f]{{32}})/(Calls|Messages|Usage/Records/Daily))?\.json$")
ONE = re.compile(rf"^/{API_VERSION}/Accounts/(AC[0-9a-f]{{32}})/(Calls|Messages)/([A-Z]{{2}}[0-9a-f]{{32}})\.json$")
# Subresources of an Account, as Twilio lists them.
ACCOUNT_SUBRESOURCES = (
    ("addresses", "Addresses"), ("conferences", "Conferences"), ("signing_keys", "SigningKeys"),
    ("transcriptions", "Transcriptions"), ("connect_apps", "ConnectApps"), ("sip", "SIP"),
    ("authorized_connect_apps", "AuthorizedConnectApps"), ("usage", "Usage"), ("keys", "Keys"),
    ("applications", "Applications"), ("recordings", "Recordings"), ("short_codes", "SMS/ShortCodes"),
    ("calls", "Calls"), ("notifications", "Notifications"), ("incoming_phone_numbers", "IncomingPhoneNumbers"),
    ("queues", "Queues"), ("messages", "Messages"), ("outgoing_caller_ids", "OutgoingCallerIds"),
    ("available_phone_numbers", "AvailablePhoneNumbers"), ("balance", "Balance"),
)


def error(status: int, code: int, message: str) -> ApiError:
    return ApiError(status, {"code": code, "message": message,
                             "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status})


def error_body(status: int) -> dict:
    if status == 429:
        return error(429, 20429, "Too Many Requests").response.body
    return error(status, 20500, "Internal Server Error").response.body


def authenticate(config: SandboxConfig, request: Request) -> None:
    auth = request.headers.get("authorization", "")
    expected = base64.b64encode(f"{config.twilio_account_sid}:{config.twilio_auth_token}".encode()).decode()
    if auth != f"Basic {expected}":
        raise error(401, 20003, "Authenticate")


def _parse_day(value: str, parameter: str) -> date:
    try:
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise error(400, 20001, f"Invalid {parameter}: {value}") from exc


def _day_window(request: Request, name: str, config: SandboxConfig) -> list[date]:
    """Days selected by `Name`, `Name>` (on or after) and `Name<` (before), newest first."""
    first, last = config.start_date, config.end_date
    if request.arg(name):
        first = last = _parse_day(request.arg(name), name)
    if request.arg(f"{name}>"):
        first = max(first, _parse_day(request.arg(f"{name}>"), f"{name}>"))
    if request.arg(f"{name}<"):
        last = min(last, _parse_day(request.arg(f"{name}<"), f"{name}<") - timedelta(days=1))
    return [last - timedelta(days=n) for n in range((last - first).days + 1)]


def _page_size(request: Request) -> int:
    try:
        size = int(request.arg("PageSize", "50"))
    except ValueError as exc:
        raise error(400, 20001, "Invalid PageSize") from exc
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise error(400, 20001, f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
    return size


def _envelope(request: Request, key: str, days: list[date], items_of_day, path: str) -> dict:
    size = _page_size(request)
    page = int(request.arg("Page", "0"))
    cursor = (0, 0)
    if request.arg("PageToken"):
        try:
            cursor = decode_cursor(request.arg("PageToken")[2:])
        except ValueError as exc:
            raise error(400, 20001, "Invalid PageToken") from exc
    items, next_cursor = page_through_days(days, items_of_day, size, cursor)
    filters = [(k, v) for k, values in request.query.items()
               if k not in ("Page", "PageToken", "PageSize") for v in values]
    base = f"/{API_VERSION}{path}"

    def uri(page_number: int, token: str | None = None) -> str:
        params = [*filters, ("PageSize", size), ("Page", page_number)]
        if token:
            params.append(("PageToken", token))
        return f"{base}?{urlencode(params)}"

    return {
        key: items,
        "end": page * size + max(len(items) - 1, 0),
        "first_page_uri": uri(0),
        "next_page_uri": uri(page + 1, "PA" + encode_cursor(*next_cursor)) if next_cursor else None,
        "page": page,
        "page_size": size,
        "previous_page_uri": None,
        "start": page * size,
        "uri": uri(page, request.arg("PageToken")),
    }


def _subaccount_clients(config: SandboxConfig, account_sid: str, include_subaccounts: bool) -> list[int]:
    if account_sid == config.twilio_account_sid:
        return [c.index for c in clients(config)] if include_subaccounts else []
    matching = [c.index for c in clients(config) if c.twilio_subaccount_sid == account_sid]
    if not matching:
        raise error(404, 20404, f"The requested resource /{API_VERSION}/Accounts/{account_sid} was not found")
    return matching


def _accounts(config: SandboxConfig, request: Request) -> Response:
    created = rfc2822(datetime.combine(config.start_date - timedelta(days=365), datetime.min.time(), UTC))
    master = config.twilio_account_sid

    def account(sid: str, name: str) -> dict:
        return {"sid": sid, "owner_account_sid": master, "friendly_name": name, "status": "active", "type": "Full",
                "date_created": created, "date_updated": created, "uri": f"/{API_VERSION}/Accounts/{sid}.json",
                "subresource_uris": {key: f"/{API_VERSION}/Accounts/{sid}/{resource}.json"
                                     for key, resource in ACCOUNT_SUBRESOURCES}}

    accounts = [account(master, "Agency")] + [account(c.twilio_subaccount_sid, c.name) for c in clients(config)]
    return Response(200, _envelope(request, "accounts", [config.end_date], lambda _day: accounts, "/Accounts.json"))


def _usage_records(config: SandboxConfig, request: Request, account_sid: str, indexes: list[int],
                   records: GeneratedRecords):
    """The days asked for, and a function giving each day's records, one per category."""
    first = _parse_day(request.arg("StartDate"), "StartDate") if request.arg("StartDate") else config.start_date
    last = _parse_day(request.arg("EndDate"), "EndDate") if request.arg("EndDate") else config.end_date
    category_filter = request.arg("Category")
    as_of = f"{config.today.isoformat()}T00:00:00+00:00"
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def records_of_day(day: date) -> list[dict]:
        in_range = config.start_date <= day <= config.end_date
        totals: dict[str, list] = {category: [0, 0, 0] for category, *_ in USAGE_CATEGORIES}
        for index in indexes if in_range else []:
            for category, (count, usage, price) in records.usage_totals(index, day).items():
                bucket = totals[category]
                bucket[0] += count
                bucket[1] += usage
                bucket[2] += price
        listed = []
        for category, description, count_unit, usage_unit in USAGE_CATEGORIES:
            if category_filter and category != category_filter:
                continue
            count, usage, price = totals[category]
            listed.append({
                "account_sid": account_sid,
                "api_version": API_VERSION,
                "as_of": as_of,
                "category": category,
                "count": str(count),
                "count_unit": count_unit,
                "description": description,
                "end_date": day.isoformat(),
                "price": f"{price:.5f}",
                "price_unit": "usd",
                "start_date": day.isoformat(),
                "usage": f"{usage:.5f}" if usage_unit == "usd" else str(usage),
                "usage_unit": usage_unit,
                "subresource_uris": {
                    name: f"/{API_VERSION}/Accounts/{account_sid}/Usage/Records/{resource}.json?Category={category}"
                    for name, resource in USAGE_SUBRESOURCES
                },
                "uri": f"/{API_VERSION}/Accounts/{account_sid}/Usage/Records/Daily?Category={category}"
                       f"&StartDate={day.isoformat()}&EndDate={day.isoformat()}",
            })
        return listed

    return days, records_of_day


def _max_messages_per_agent_day(config: SandboxConfig) -> int:
    return config.calls_per_agent_per_day // 2 + 1  # sandbox.usage draws randrange(0, calls // 2 + 2)


@lru_cache(maxsize=4)
def sid_locations(config: SandboxConfig) -> dict[str, tuple[int, date]]:
    """The 32 hex digits of every call and message sid the config can generate -> (client index, day),
    derived as sandbox.usage derives them, without generating the records."""
    locations: dict[str, tuple[int, date]] = {}
    for call_id, where in call_locations(config).items():
        locations[stable_hex(config.seed, "twilio-call", call_id)] = where  # web calls have no leg: a miss
    for day in config.iter_days():
        for client in clients(config):
            where = (client.index, day)
            for agent in client.agents:
                for k in range(_max_messages_per_agent_day(config)):
                    locations[stable_hex(config.seed, "message", day, agent.agent_id, k)] = where
    return locations


def _fetch(config: SandboxConfig, request: Request, account_sid: str, resource: str, sid: str) -> Response:
    location = sid_locations(config).get(sid[2:])
    if location is not None:
        index, day = location
        usage = client_day(config, index, day)
        for record in usage.twilio_calls if resource == "Calls" else usage.twilio_messages:
            if record.get("sid") == sid and record["account_sid"] == account_sid:
                return Response(200, record)
    raise error(404, 20404, f"The requested resource {request.path} was not found")


def handle(config: SandboxConfig, request: Request, records: GeneratedRecords) -> Response:
    authenticate(config, request)
    one = ONE.match(request.path)
    if request.method == "GET" and one:
        return _fetch(config, request, *one.groups())
    match = ROUTE.match(request.path)
    if request.method != "GET" or not match:
        raise error(404, 20404, f"The requested resource {request.path} was not found")
    account_sid, collection = match.groups()
    if account_sid is None:
        return _accounts(config, request)
    path = f"/Accounts/{account_sid}/{collection}.json"
    if collection == "Usage/Records/Daily":
        include = (request.arg("IncludeSubaccounts", "true") or "true").lower() == "true"
        indexes = _subaccount_clients(config, account_sid, include)
        days, records_of_day = _usage_records(config, request, account_sid, indexes, records)
        return Response(200, _envelope(request, "usage_records", days, records_of_day, path))

    indexes = _subaccount_clients(config, account_sid, include_subaccounts=False)
    if collection == "Calls":
        days = _day_window(request, "StartTime", config)
        status = request.arg("Status")

        def calls_of_day(day: date) -> list[dict]:
            def listing() -> list[dict]:
                legs = [leg for i in indexes for leg in records.client_day(i, day, client_day).twilio_calls
                        if status is None or leg["status"] == status]
                return sorted(legs, key=lambda leg: leg["uri"], reverse=True)

            return records.merged(("twilio_calls", client_day, tuple(indexes), day, status), listing)

        return Response(200, _envelope(request, "calls", days, calls_of_day, path))

    days = _day_window(request, "DateSent", config)

    def messages_of_day(day: date) -> list[dict]:
        def listing() -> list[dict]:
            messages = [m for i in indexes for m in records.client_day(i, day, client_day).twilio_messages]
            return sorted(messages, key=lambda m: m["uri"], reverse=True)

        return records.merged(("twilio_messages", client_day, tuple(indexes), day), listing)

    return Response(200, _envelope(request, "messages", days, messages_of_day, path))
