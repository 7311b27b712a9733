"""Deterministic usage, in the providers' own formats, generated one client-day at a time.

Nothing holds more than a few client-days in memory: every listing walks days in order and asks
for the client-days it needs.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from sandbox.agency import Agent, Client, clients, unregistered_agent
from sandbox.config import SandboxConfig, stable_hex
from sandbox.corruption import corrupt
from sandbox.scenarios import plan

CENT = Decimal("0.0001")
# Retell products, cents per billed second.
RETELL_PRODUCTS = (("retell_platform", Decimal("0.1167")), ("gpt_4_1_mini", Decimal("0.0267")))
TWILIO_VOICE_PER_MINUTE = {"inbound": Decimal("0.0085"), "outbound-api": Decimal("0.0140")}
TWILIO_SMS_PER_SEGMENT = Decimal("0.0083")
TWILIO_MMS_PER_MESSAGE = Decimal("0.0220")
# model, permaslug, provider, USD per million prompt tokens, per million completion tokens
OPENROUTER_MODELS = (
    ("openai/gpt-4.1-mini", "openai/gpt-4.1-mini-2025-04-14", "OpenAI", Decimal("0.40"), Decimal("1.60")),
    ("anthropic/claude-3.5-haiku", "anthropic/claude-3-5-haiku-20241022", "Anthropic", Decimal("0.80"),
     Decimal("4.00")),
)
API_VERSION = "2010-04-01"
CALL_SUBRESOURCES = (
    ("notifications", "Notifications"), ("recordings", "Recordings"), ("payments", "Payments"),
    ("events", "Events"), ("siprec", "Siprec"), ("streams", "Streams"), ("transcriptions", "Transcriptions"),
    ("user_defined_message_subscriptions", "UserDefinedMessageSubscriptions"),
    ("user_defined_messages", "UserDefinedMessages"),
)
USAGE_SUBRESOURCES = (
    ("all_time", "AllTime"), ("daily", "Daily"), ("last_month", "LastMonth"), ("monthly", "Monthly"),
    ("this_month", "ThisMonth"), ("today", "Today"), ("yearly", "Yearly"), ("yesterday", "Yesterday"),
)


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc2822(moment: datetime) -> str:
    """Twilio's date format: 'Fri, 18 Oct 2019 17:00:00 +0000' (email.utils is 5x slower)."""
    t = moment.astimezone(UTC)
    return (f"{_WEEKDAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} +0000")


def twilio_price(amount: Decimal) -> str:
    """Twilio reports a charge as a negative string with five decimals."""
    return f"{-amount:.5f}" if amount else "0.00000"


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _formatted(number: str) -> str:
    return f"({number[2:5]}) {number[5:8]}-{number[8:]}"


@dataclass
class ClientDay:
    """Everything one client used on one UTC day."""

    retell_calls: list[dict]
    twilio_calls: list[dict]
    twilio_messages: list[dict]


def _priced(price: Decimal, factor: Decimal) -> Decimal:
    return price if factor == 1 else price * factor


def _retell_call(config: SandboxConfig, client: Client, agent: Agent, day: date, k: int,
                 rng: random.Random, handled_by: Agent | None = None) -> tuple[dict, dict | None]:
    """Call k of `agent` that day; `handled_by` another agent (scenario unregistered_agent) answers it."""
    call_id = "call_" + stable_hex(config.seed, "call", day, client.index, agent.agent_id, k, length=28)
    agent = handled_by or agent
    scenarios = plan(config.scenarios)
    start = _day_start(day) + timedelta(milliseconds=rng.randrange(0, 86_400_000 - 1_000))
    is_phone = rng.random() < 0.85
    connected = not is_phone or rng.random() > 0.05
    drawn_ms = duration_ms = rng.randrange(4_000, 600_000) if connected else 0
    usage_factor = scenarios.usage_factor(client.index, day)
    if usage_factor != 1.0:
        duration_ms = round(drawn_ms * usage_factor)
    billed_seconds = max(10, math.ceil(duration_ms / 1000)) if connected else 0
    end = start + timedelta(milliseconds=duration_ms)
    start_ms = int(start.timestamp() * 1000)
    retell_prices = [(name, _priced(price, scenarios.price_factor("retell:voice_seconds", day)))
                     for name, price in RETELL_PRODUCTS]
    product_costs = [
        {"product": name, "unit_price": float(price), "cost": float((price * billed_seconds).quantize(CENT)),
         "is_transfer_leg_cost": False}
        for name, price in retell_prices
    ] if connected else []
    combined = sum((Decimal(str(p["cost"])) for p in product_costs), Decimal(0))
    call = {
        "call_id": call_id,
        "agent_id": agent.retell_agent_id,
        "agent_name": agent.name,
        "agent_version": 1 + (day.toordinal() // 7) % 3,
        "call_type": "phone_call" if is_phone else "web_call",
        "call_status": "ended" if connected else "not_connected",
        "start_timestamp": start_ms,
        "end_timestamp": start_ms + duration_ms,
        "duration_ms": duration_ms,
        "disconnection_reason": rng.choice(("user_hangup", "agent_hangup")) if connected else "dial_no_answer",
        "metadata": {"crm_ref": stable_hex(config.seed, "crm", call_id, length=12)},
        "data_storage_setting": "everything",
        "call_cost": {
            "product_costs": product_costs,
            "total_duration_seconds": billed_seconds,
            "total_duration_unit_price": float(sum(p for _, p in retell_prices)) if connected else 0,
            "combined_cost": float(combined),
        },
    }
    if connected:
        requests = max(1, drawn_ms // 15_000)
        values = [800 + int(rng.random() * 1_600) for _ in range(requests)]
        if duration_ms != drawn_ms:  # a planted spike: as many requests as the longer call makes, and no
            # other draw, so the rest of the day is what it would have been
            values = [values[n % len(values)] for n in range(max(1, duration_ms // 15_000))]
        call["llm_token_usage"] = {"values": values, "average": sum(values) / len(values),
                                   "num_requests": float(len(values))}
        call["call_analysis"] = {"call_successful": rng.random() < 0.8, "in_voicemail": False,
                                 "user_sentiment": rng.choice(("Positive", "Neutral", "Negative"))}
    if not is_phone:
        call["access_token"] = "eyJ" + stable_hex(config.seed, "token", call_id, length=40)
        return call, None

    direction = "inbound" if rng.random() < 0.6 else "outbound"
    customer = f"+1303{rng.randrange(0, 10_000_000):07d}"
    from_number, to_number = (customer, agent.phone_number) if direction == "inbound" else (
        agent.phone_number, customer)
    call_sid = "CA" + stable_hex(config.seed, "twilio-call", call_id)
    call.update(direction=direction, from_number=from_number, to_number=to_number,
                telephony_identifier={"twilio_call_sid": call_sid})
    twilio_direction = "inbound" if direction == "inbound" else "outbound-api"
    seconds = math.ceil(duration_ms / 1000)
    per_minute = _priced(TWILIO_VOICE_PER_MINUTE[twilio_direction], scenarios.price_factor("twilio:voice_minutes", day))
    price = per_minute * math.ceil(seconds / 60)
    account = client.twilio_subaccount_sid
    leg = {
        "sid": call_sid,
        "account_sid": account,
        "parent_call_sid": None,
        "date_created": rfc2822(start - timedelta(seconds=2)),
        "date_updated": rfc2822(end + timedelta(seconds=3)),
        "start_time": rfc2822(start) if connected else None,
        "end_time": rfc2822(end) if connected else None,
        "duration": str(seconds),
        "price": twilio_price(price),
        "price_unit": "USD",
        "direction": twilio_direction,
        "status": "completed" if connected else "no-answer",
        "from": from_number,
        "to": to_number,
        "from_formatted": _formatted(from_number),
        "to_formatted": _formatted(to_number),
        "phone_number_sid": agent.phone_number_sid,
        "answered_by": None,
        "caller_name": None,
        "forwarded_from": None,
        "group_sid": None,
        "trunk_sid": None,
        "queue_time": "0",
        "stir_verstat": None,  # in the twilio SDK's Call, not in the spec examples; no STIR/SHAKEN info here
        "api_version": API_VERSION,
        "uri": f"/{API_VERSION}/Accounts/{account}/Calls/{call_sid}.json",
        "subresource_uris": {
            name: f"/{API_VERSION}/Accounts/{account}/Calls/{call_sid}/{resource}.json"
            for name, resource in CALL_SUBRESOURCES
        },
    }
    return call, leg


def _message(config: SandboxConfig, client: Client, agent: Agent, day: date, k: int,
             rng: random.Random) -> dict:
    is_mms = rng.random() < 0.1
    sid = ("MM" if is_mms else "SM") + stable_hex(config.seed, "message", day, agent.agent_id, k)
    sent = _day_start(day) + timedelta(seconds=rng.randrange(0, 86_400))
    outbound = rng.random() < 0.7
    customer = f"+1303{rng.randrange(0, 10_000_000):07d}"
    segments = 1 if is_mms else rng.choice((1, 1, 1, 2, 3))
    scenarios = plan(config.scenarios)
    price = (_priced(TWILIO_MMS_PER_MESSAGE, scenarios.price_factor("twilio:mms_messages", day)) if is_mms else
             _priced(TWILIO_SMS_PER_SEGMENT, scenarios.price_factor("twilio:sms_segments", day)) * segments)
    account = client.twilio_subaccount_sid
    return {
        "sid": sid,
        "account_sid": account,
        "messaging_service_sid": client.messaging_service_sid,
        "api_version": API_VERSION,
        "body": "Your appointment is confirmed." if outbound else "Thanks!",
        "date_created": rfc2822(sent - timedelta(seconds=1)),
        "date_sent": rfc2822(sent),
        "date_updated": rfc2822(sent + timedelta(seconds=4)),
        "direction": "outbound-api" if outbound else "inbound",
        "error_code": None,
        "error_message": None,
        "from": agent.phone_number if outbound else customer,
        "to": customer if outbound else agent.phone_number,
        "num_media": "1" if is_mms else "0",
        "num_segments": str(segments),
        "price": twilio_price(price),
        "price_unit": "USD",
        "status": "delivered" if outbound else "received",
        "uri": f"/{API_VERSION}/Accounts/{account}/Messages/{sid}.json",
        "subresource_uris": {
            "media": f"/{API_VERSION}/Accounts/{account}/Messages/{sid}/Media.json",
            "feedback": f"/{API_VERSION}/Accounts/{account}/Messages/{sid}/Feedback.json",
        },
    }


@lru_cache(maxsize=256)
def client_day(config: SandboxConfig, client_index: int, day: date) -> ClientDay:
    client = clients(config)[client_index]
    result = ClientDay([], [], [])
    scenarios = plan(config.scenarios)
    if scenarios.client_silent(client_index, day):
        return result
    rate = scenarios.corrupt_rate(day)
    damage = dataclasses.replace(config, corrupt_rate=rate) if rate is not None else config
    unregistered = scenarios.unregistered(client_index, day)
    stand_in = unregistered_agent(config, client) if unregistered else None
    retell_silent, twilio_silent = (scenarios.provider_silent(p, day) for p in ("retell", "twilio"))
    for aj, agent in enumerate(client.agents):
        rng = random.Random(f"{config.seed}:{day.isoformat()}:{agent.agent_id}")
        for k in range(config.calls_per_agent_per_day):
            handled_by = stand_in if aj * config.calls_per_agent_per_day + k < unregistered else None
            call, leg = _retell_call(config, client, agent, day, k, rng, handled_by)
            if not retell_silent:
                result.retell_calls.append(corrupt(damage, "retell_call", call, call["call_id"]))
            if leg is not None and not twilio_silent:
                result.twilio_calls.append(corrupt(damage, "twilio_call", leg, leg["sid"]))
        for k in range(rng.randrange(0, config.calls_per_agent_per_day // 2 + 2)):
            message = _message(config, client, agent, day, k, rng)
            if not twilio_silent:
                result.twilio_messages.append(corrupt(damage, "twilio_message", message, message["sid"]))
    # Sorted as the APIs list them; a record that lost its id sorts by its timestamps alone.
    result.retell_calls.sort(key=lambda c: (c["start_timestamp"], c.get("call_id", "")))
    result.twilio_calls.sort(key=lambda c: (c["uri"], c.get("sid", "")))
    result.twilio_messages.sort(key=lambda m: (m["date_sent"], m.get("sid", "")))
    return result


def openrouter_activity(config: SandboxConfig, client_index: int, day: date) -> list[dict]:
    """Activity rows of one client's key on one UTC day, one per model endpoint."""
    client = clients(config)[client_index]
    scenarios = plan(config.scenarios)
    if scenarios.client_silent(client_index, day) or scenarios.provider_silent("openrouter", day):
        return []
    rate = scenarios.corrupt_rate(day)
    damage = dataclasses.replace(config, corrupt_rate=rate) if rate is not None else config
    usage_factor = scenarios.usage_factor(client_index, day)
    price_factor = scenarios.price_factor("openrouter:llm_tokens", day)
    rng = random.Random(f"{config.seed}:{day.isoformat()}:{client.client_id}:openrouter")
    rows = []
    for model, permaslug, provider, prompt_price, completion_price in OPENROUTER_MODELS:
        requests = rng.randrange(0, len(client.agents) * config.calls_per_agent_per_day * 3 + 1)
        if usage_factor != 1.0:
            requests = round(requests * usage_factor)
        prompt_price, completion_price = _priced(prompt_price, price_factor), _priced(completion_price, price_factor)
        if requests == 0:
            continue
        prompt_tokens = requests * rng.randrange(300, 1_500)
        completion_tokens = requests * rng.randrange(40, 300)
        usage = (prompt_tokens * prompt_price + completion_tokens * completion_price) / 1_000_000
        row = {
            "date": day.isoformat(),
            "model": model,
            "model_permaslug": permaslug,
            "endpoint_id": _uuid(stable_hex(config.seed, "endpoint", permaslug)),
            "provider_name": provider,
            "usage": float(usage.quantize(Decimal("0.000000001"))),
            "byok_usage_inference": 0.0,
            "requests": requests,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "reasoning_tokens": 0,
            "cached_tokens": prompt_tokens // 4,
        }
        rows.append(corrupt(damage, "openrouter_activity", row, f"{day}:{client.client_id}:{permaslug}"))
    return rows


def _uuid(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:32]}"


USAGE_CATEGORIES = (
    # category, description, count unit, usage unit
    ("calls-inbound", "Voice Minutes Inbound", "calls", "minutes"),
    ("calls-outbound", "Voice Minutes Outbound", "calls", "minutes"),
    ("calls", "Voice Minutes", "calls", "minutes"),
    ("sms-inbound", "SMS Inbound", "messages", "messages"),
    ("sms-outbound", "SMS Outbound", "messages", "messages"),
    ("sms", "SMS", "messages", "messages"),
    ("mms", "MMS", "messages", "messages"),
    ("totalprice", "Total Price", "", "usd"),
)


def usage_totals(day_usage: ClientDay) -> dict[str, tuple[int, Decimal, Decimal]]:
    """Twilio's daily usage by category: (count, usage, price). Parents include their children."""
    totals = {category: [0, Decimal(0), Decimal(0)] for category, *_ in USAGE_CATEGORIES}

    def add(category: str, count: int, usage: Decimal, price: Decimal) -> None:
        bucket = totals[category]
        bucket[0] += count
        bucket[1] += usage
        bucket[2] += price

    for leg in day_usage.twilio_calls:
        price = -Decimal(leg["price"])
        minutes = Decimal(math.ceil(int(leg["duration"]) / 60))
        leaf = "calls-inbound" if leg["direction"] == "inbound" else "calls-outbound"
        add(leaf, 1, minutes, price)
        add("calls", 1, minutes, price)
        add("totalprice", 0, price, price)
    for message in day_usage.twilio_messages:
        price = -Decimal(message["price"])
        if message.get("sid", "").startswith("MM"):
            add("mms", 1, Decimal(1), price)
        else:
            leaf = "sms-inbound" if message["direction"] == "inbound" else "sms-outbound"
            segments = Decimal(message["num_segments"])
            add(leaf, 1, segments, price)
            add("sms", 1, segments, price)
        add("totalprice", 0, price, price)
    return {category: (count, usage, price) for category, (count, usage, price) in totals.items()}
