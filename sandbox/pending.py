"""Usage whose price has not settled yet: Twilio prices are null, Retell calls lack their cost.

The sandbox answers this way for the last N generated days while a test asks it to, so collectors
can be shown to pick up the settled values on a later run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime

RETELL_LATE_FIELDS = ("call_cost", "llm_token_usage", "call_analysis")


def _retell_day(call: dict) -> date:
    return datetime.fromtimestamp(call["start_timestamp"] / 1000, UTC).date()


def _twilio_day(record: dict) -> date | None:
    try:
        return parsedate_to_datetime(record.get("date_sent") or record["date_created"]).date()
    except (TypeError, ValueError):
        return None


def unsettle(provider: str, body: object, since: date) -> object:
    """A copy of a list response with records from `since` on shown as not yet priced."""
    if not isinstance(body, dict):
        return body
    if provider == "retell" and "items" in body:
        body = dict(body, items=[
            {k: v for k, v in call.items() if k not in RETELL_LATE_FIELDS} if _retell_day(call) >= since else call
            for call in body["items"]
        ])
    elif provider == "twilio":
        for key in ("calls", "messages"):
            if key in body:
                body = dict(body, **{key: [
                    dict(record, price=None) if (_twilio_day(record) or since) >= since else record
                    for record in body[key]
                ]})
    return body
