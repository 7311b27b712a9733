"""Prices that have not settled yet: Twilio prices are null, Retell calls lack their cost.

Held back are Retell calls and Twilio calls and messages, in list and by-id responses alike (usage
records and OpenRouter are always settled). A record is held back when

- it is from the last N generated days, while `POST /_sandbox/pending {"days": N}` is in force, or
- its id was named in `POST /_sandbox/pending {"ids": [...]}`, whatever its day,

and it stays held back until it is settled; nothing settles by itself. Control:

    POST   /_sandbox/pending {"days": N, "ids": [...]}  hold the last N days (replaces N) and/or hold
                                                         these ids (added); an empty body means {"days": 1}
    POST   /_sandbox/settle  {"ids": [...]}              settle these records; the others stay pending
    POST   /_sandbox/settle  {"all": true}               end the day window; ids held by name stay
                                                         pending, so a test can keep some pending forever
    GET    /_sandbox/pending                             the window and the ids held back now
    DELETE /_sandbox/pending                             forget everything: every price is settled

Ids are the providers' own: a Retell call_id, a Twilio call or message sid. A phone call's Retell call
and its Twilio leg settle separately, as at the providers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime

from sandbox.agency import clients
from sandbox.config import SandboxConfig
from sandbox.usage import client_day

RETELL_LATE_FIELDS = ("call_cost", "llm_token_usage", "call_analysis")
TWILIO_LISTS = ("calls", "messages")


def _retell_day(call: dict) -> date:
    return datetime.fromtimestamp(call["start_timestamp"] / 1000, UTC).date()


def _twilio_day(record: dict) -> date | None:
    try:
        return parsedate_to_datetime(record.get("date_sent") or record["date_created"]).date()
    except (TypeError, ValueError):
        return None


def _unpriced_call(call: dict) -> dict:
    return {k: v for k, v in call.items() if k not in RETELL_LATE_FIELDS}


class PendingPrices:
    """What the sandbox holds back; sets are replaced, never mutated, so readers need no lock."""

    def __init__(self) -> None:
        self.days = 0
        self.held_ids: frozenset[str] = frozenset()  # pending whatever their day, until settled by id
        self.settled_ids: frozenset[str] = frozenset()  # settled inside the day window
        self._lock = threading.Lock()

    def hold(self, days: int | None = None, ids: Iterable[str] = ()) -> None:
        ids = frozenset(ids)
        with self._lock:
            if days is not None:
                self.days = max(0, int(days))
            self.held_ids |= ids
            self.settled_ids -= ids

    def settle(self, ids: Iterable[str] = (), everything: bool = False) -> None:
        ids = frozenset(ids)
        with self._lock:
            self.held_ids -= ids
            if everything:
                self.days, self.settled_ids = 0, frozenset()
            else:
                self.settled_ids |= ids

    def clear(self) -> None:
        with self._lock:
            self.days, self.held_ids, self.settled_ids = 0, frozenset(), frozenset()

    def since(self, config: SandboxConfig) -> date | None:
        """First day of the window, or None when no window is in force."""
        return config.end_date - timedelta(days=self.days - 1) if self.days else None

    def is_pending(self, record_id: str | None, day: date | None, since: date | None) -> bool:
        if record_id in self.held_ids:
            return True
        if since is None or record_id in self.settled_ids:
            return False
        return day is None or day >= since  # an unreadable date counts as recent

    def apply(self, provider: str, body: object, config: SandboxConfig) -> object:
        """A copy of a list or by-id response body with the held-back records shown as not yet priced."""
        if not isinstance(body, dict) or not (self.days or self.held_ids):
            return body
        since = self.since(config)
        if provider == "retell":
            def retell(call: dict) -> dict:
                pending = self.is_pending(call.get("call_id"), _retell_day(call), since)
                return _unpriced_call(call) if pending else call

            if "items" in body:
                return dict(body, items=[retell(call) for call in body["items"]])
            return retell(body) if "call_id" in body else body
        if provider == "twilio":
            def twilio(record: dict) -> dict:
                pending = self.is_pending(record.get("sid"), _twilio_day(record), since)
                return dict(record, price=None) if pending else record

            lists = {key: [twilio(r) for r in body[key]] for key in TWILIO_LISTS if key in body}
            if lists:
                return dict(body, **lists)
            return twilio(body) if "sid" in body and "price" in body else body
        return body

    def report(self, config: SandboxConfig) -> dict:
        """The window and every id served unpriced right now, per provider."""
        since = self.since(config)
        held: dict[str, set[str]] = {"retell": set(), "twilio": set()}
        for record_id in self.held_ids:
            held["retell" if record_id.startswith("call_") else "twilio"].add(record_id)
        # Twilio dates a call by its creation, up to 2 s before it started: hence the same test as apply().
        day = max(since, config.start_date) if since else config.today
        while day <= config.end_date:
            for client in clients(config):
                usage = client_day(config, client.index, day)
                held["retell"].update(c["call_id"] for c in usage.retell_calls
                                      if "call_id" in c and self.is_pending(c["call_id"], _retell_day(c), since))
                held["twilio"].update(r["sid"] for r in usage.twilio_calls + usage.twilio_messages
                                      if "sid" in r and self.is_pending(r["sid"], _twilio_day(r), since))
            day += timedelta(days=1)
        return {
            "pending_days": self.days,
            "since": since.isoformat() if since else None,
            "held_ids": {provider: sorted(ids) for provider, ids in held.items()},
            "held_by_id": sorted(self.held_ids),
            "settled_ids": sorted(self.settled_ids),
        }
