"""The FinOps Open Cost and Usage Specification (FOCUS) 1.2, as far as this export uses it: the column
list in our own words, how each charge of a cycle becomes a FOCUS row, and a validator that checks rows
against the specification's presence, type, nullability and allowed-value rules.

How the agency's world maps onto FOCUS (docs/reporting.md has the table):
- the agency re-bills provider usage to its clients, like a managed service provider: ProviderName and
  InvoiceIssuerName are the agency, PublisherName is Retell AI, Twilio or OpenRouter;
- the client is the billing account and its cycle the billing period; the cycle's statement is the
  invoice (InvoiceId = cycle_id), so Σ BilledCost per InvoiceId = the statement's total;
- the client is also the sub account (one account level), the voice agent is the resource;
- one row per cycle × agent × provider × metric (ChargeCategory Usage), plus one per adjustment billed into
  the cycle (Usage, ChargeClass Correction: it corrects a closed, already invoiced cycle).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal

FOCUS_VERSION = "1.2"

# FOCUS data types (spec: Attributes > Numeric/Date-Time/Key-Value Format)
STRING, DECIMAL, DATETIME, JSON = "String", "Decimal", "Date/Time", "JSON"
MANDATORY, CONDITIONAL, RECOMMENDED = "Mandatory", "Conditional", "Recommended"


@dataclass(frozen=True)
class FocusColumn:
    column_id: str
    data_type: str
    feature_level: str
    allows_nulls: bool
    meaning: str  # in our words, and what we put in it
    allowed_values: tuple[str, ...] = ()


CHARGE_CATEGORIES = ("Usage", "Purchase", "Tax", "Credit", "Adjustment")
CHARGE_FREQUENCIES = ("One-Time", "Recurring", "Usage-Based")
SERVICE_CATEGORIES = (
    "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases", "Developer Tools",
    "Multicloud", "Identity", "Integration", "Internet of Things", "Management and Governance", "Media",
    "Migration", "Mobile", "Networking", "Security", "Storage", "Web", "Other")
# the subcategories this export uses, each with its one parent category (the specification lists more)
SERVICE_SUBCATEGORIES = {"Bots": "AI and Machine Learning", "Generative AI": "AI and Machine Learning",
                         "Messaging": "Integration", "Network Connectivity": "Networking"}

# Every FOCUS 1.2 column we emit, in the order of the file: all 21 Mandatory columns, the Conditional ones
# that apply to us, three Recommended ones. Not emitted, because they do not apply: BillingAccountType and
# SubAccountType (one kind of account), capacity reservations and commitment discounts (none), list and
# contracted unit prices, PricingCategory and the Sku* columns (costs are passed through from the providers,
# we publish no price list), PricingCurrency* (no virtual currency), regions and availability zones (none).
COLUMNS: tuple[FocusColumn, ...] = (
    FocusColumn("BilledCost", DECIMAL, MANDATORY, False,
                "What the client is invoiced for the charge, in BillingCurrency: the providers' settled cost "
                "passed through (a correction is signed)."),
    FocusColumn("BillingAccountId", STRING, MANDATORY, False, "The account invoiced: the client's id."),
    FocusColumn("BillingAccountName", STRING, MANDATORY, True, "The client's display name."),
    FocusColumn("BillingCurrency", STRING, MANDATORY, False, "ISO 4217 code of the billed amounts: USD."),
    FocusColumn("BillingPeriodEnd", DATETIME, MANDATORY, False, "Exclusive end of the client's billing cycle."),
    FocusColumn("BillingPeriodStart", DATETIME, MANDATORY, False, "Inclusive start of the client's billing cycle."),
    FocusColumn("ChargeCategory", STRING, MANDATORY, False, "Highest-level kind of charge: always Usage here.",
                CHARGE_CATEGORIES),
    FocusColumn("ChargeClass", STRING, MANDATORY, True,
                "Correction when the row corrects an already invoiced period (an adjustment of a closed "
                "cycle), else null.", ("Correction",)),
    FocusColumn("ChargeDescription", STRING, MANDATORY, True, "A readable one-line summary of the charge."),
    FocusColumn("ChargePeriodEnd", DATETIME, MANDATORY, False,
                "Exclusive end of the period the charge covers: the end of the cycle it was used in."),
    FocusColumn("ChargePeriodStart", DATETIME, MANDATORY, False,
                "Inclusive start of that period: the start of the cycle it was used in."),
    FocusColumn("ContractedCost", DECIMAL, MANDATORY, False,
                "Cost at negotiated prices; no contracted unit price exists, so it equals BilledCost."),
    FocusColumn("EffectiveCost", DECIMAL, MANDATORY, False,
                "Amortized cost; nothing is prepaid or amortized, so it equals BilledCost."),
    FocusColumn("InvoiceIssuerName", STRING, MANDATORY, False, "Who invoices the client: the agency."),
    FocusColumn("ListCost", DECIMAL, MANDATORY, False, "Cost at list prices; no list unit price, so BilledCost."),
    FocusColumn("PricingQuantity", DECIMAL, MANDATORY, True,
                "Quantity in PricingUnit: the billed quantity of the metric (null only for taxes)."),
    FocusColumn("PricingUnit", STRING, MANDATORY, True, "Unit of PricingQuantity (e.g. Seconds, Minutes, Tokens)."),
    FocusColumn("ProviderName", STRING, MANDATORY, False, "Who makes the service available to the client: the agency."),
    FocusColumn("PublisherName", STRING, MANDATORY, False, "Who produces the service: Retell AI, Twilio, OpenRouter."),
    FocusColumn("ServiceCategory", STRING, MANDATORY, False, "Highest-level kind of service.", SERVICE_CATEGORIES),
    FocusColumn("ServiceName", STRING, MANDATORY, False, "The service, e.g. Twilio Programmable Voice."),
    FocusColumn("ConsumedQuantity", DECIMAL, CONDITIONAL, True,
                "Volume used, in ConsumedUnit; required on usage rows that are not corrections."),
    FocusColumn("ConsumedUnit", STRING, CONDITIONAL, True, "Unit of ConsumedQuantity."),
    FocusColumn("SubAccountId", STRING, CONDITIONAL, True,
                "The container of the resources: the client's id (one account level)."),
    FocusColumn("SubAccountName", STRING, CONDITIONAL, True, "The client's display name."),
    FocusColumn("ResourceId", STRING, CONDITIONAL, True,
                "The voice agent that used the service; null for client-level resources and for corrections."),
    FocusColumn("ResourceName", STRING, CONDITIONAL, True, "The agent's display name."),
    FocusColumn("ResourceType", STRING, CONDITIONAL, True, "Voice Agent when ResourceId is set, else null."),
    FocusColumn("Tags", JSON, CONDITIONAL, True, 'Key-value JSON object: {"client": ..., "agent": ...}.'),
    FocusColumn("ChargeFrequency", STRING, RECOMMENDED, False, "How often the charge occurs: Usage-Based.",
                CHARGE_FREQUENCIES),
    FocusColumn("InvoiceId", STRING, RECOMMENDED, True,
                "The statement the charge is invoiced on: the id of the cycle it bills into."),
    FocusColumn("ServiceSubcategory", STRING, RECOMMENDED, False,
                "Second-level kind of service, with a single parent ServiceCategory.",
                tuple(SERVICE_SUBCATEGORIES)),
)
FOCUS_COLUMN_IDS = tuple(column.column_id for column in COLUMNS)
MANDATORY_COLUMN_IDS = tuple(column.column_id for column in COLUMNS if column.feature_level == MANDATORY)

# Custom columns: FOCUS requires the x_ prefix and places them after the FOCUS columns.
CUSTOM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("x_CycleId", "The cycle the usage happened in (for a correction: the closed cycle it corrects)."),
    ("x_CycleStatus", "open, settling or closed: that cycle's status for the provider."),
    ("x_CoverageStatus", "The statement line's coverage status (ok, warn, error, not_yet_comparable, not_measured)."),
    ("x_Metric", "The metric in billing-usage terms (voice_seconds, sms_segments, ...)."),
    ("x_EventCount", "Usage events in the charge."),
    ("x_PendingEvents", "Events of the charge still waiting for a price: BilledCost does not include them yet."),
    ("x_ExpiredEvents", "Events whose price never came."),
    ("x_AdjustmentId", "fct_cycle_adjustments.adjustment_id of a correction."),
    ("x_AdjustmentReason", "late_event, changed_after_close or removed_after_close."),
)
HEADER = FOCUS_COLUMN_IDS + tuple(name for name, _ in CUSTOM_COLUMNS)

# billing-usage unit -> FOCUS Unit Format (plural, capitalized; Segments and Messages are count nouns of ours)
UNITS = {"second": "Seconds", "minute": "Minutes", "segment": "Segments", "message": "Messages",
         "token": "Tokens", "request": "Requests"}
PUBLISHERS = {"retell": "Retell AI", "twilio": "Twilio", "openrouter": "OpenRouter"}
# (provider, metric) -> (ServiceName, ServiceCategory, ServiceSubcategory)
SERVICES = {
    ("retell", "voice_seconds"): ("Retell AI Voice Agents", "AI and Machine Learning", "Bots"),
    ("retell", "llm_tokens"): ("Retell AI Voice Agents", "AI and Machine Learning", "Bots"),
    ("twilio", "voice_minutes"): ("Twilio Programmable Voice", "Networking", "Network Connectivity"),
    ("twilio", "sms_segments"): ("Twilio Programmable Messaging", "Integration", "Messaging"),
    ("twilio", "mms_messages"): ("Twilio Programmable Messaging", "Integration", "Messaging"),
    ("openrouter", "llm_tokens"): ("OpenRouter", "AI and Machine Learning", "Generative AI"),
    ("openrouter", "llm_requests"): ("OpenRouter", "AI and Machine Learning", "Generative AI"),
}

_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?(E-?[0-9]+)?$")
_DATETIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_COLUMN_ID = re.compile(r"^[A-Z][A-Za-z0-9]*$")


class FocusError(ValueError):
    """A row or file does not conform to FOCUS; the message names the row and column."""


def decimal_text(value: Decimal | int) -> str:
    """A number in FOCUS Numeric Format: plain decimal notation, no '+', no exponent."""
    text = format(Decimal(value), "f")
    return "0" if text in ("-0", "") else text


def validate_rows(header: Iterable[str], rows: Iterable[Mapping[str, str | None]]) -> int:
    """Check a FOCUS dataset (CSV cells as text, None or '' for null) against the columns above and the
    specification's rules; raise FocusError on the first violation. Returns the number of rows."""
    header = tuple(header)
    missing = [column_id for column_id in MANDATORY_COLUMN_IDS if column_id not in header]
    if missing:
        raise FocusError(f"mandatory FOCUS columns missing: {', '.join(missing)}")
    specified = {column.column_id: column for column in COLUMNS}
    focus_part = [name for name in header if not name.startswith("x_")]
    if header[:len(focus_part)] != tuple(focus_part):
        raise FocusError("custom x_ columns must come after every FOCUS column")
    for name in focus_part:
        if name not in specified:
            raise FocusError(f"column {name} is neither a FOCUS 1.2 column we specify nor prefixed x_")
        if not _COLUMN_ID.match(name):
            raise FocusError(f"column {name} is not a PascalCase alphanumeric id")
    count = 0
    for count, row in enumerate(rows, start=1):
        values = {name: (row.get(name) if row.get(name) not in ("", None) else None) for name in header}
        for name in focus_part:
            _check_cell(specified[name], values[name], count)
        _check_row_rules(values, count)
    return count


def _check_cell(column: FocusColumn, value: str | None, row: int) -> None:
    where = f"row {row}, {column.column_id}"
    if value is None:
        if not column.allows_nulls:
            raise FocusError(f"{where}: must not be null")
        return
    if value != value.strip():
        raise FocusError(f"{where}: leading or trailing spaces in {value!r}")
    if column.data_type == DECIMAL and not _DECIMAL.match(value):
        raise FocusError(f"{where}: {value!r} is not in FOCUS Numeric Format")
    if column.data_type == DATETIME and not _DATETIME.match(value):
        raise FocusError(f"{where}: {value!r} is not YYYY-MM-DDTHH:mm:ssZ")
    if column.data_type == JSON:
        try:
            parsed = json.loads(value, object_pairs_hook=_unique_keys)
        except ValueError as exc:
            raise FocusError(f"{where}: not a JSON object with unique keys ({exc})") from None
        if not isinstance(parsed, dict) or any(isinstance(v, dict | list) for v in parsed.values()):
            raise FocusError(f"{where}: must be a JSON object of scalar values")
    if column.column_id == "BillingCurrency" and not _CURRENCY.match(value):
        raise FocusError(f"{where}: {value!r} is not an ISO 4217 code")
    if column.allowed_values and value not in column.allowed_values:
        raise FocusError(f"{where}: {value!r} is not one of the allowed values")


def _unique_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def _check_row_rules(values: Mapping[str, str | None], row: int) -> None:
    """The conditional requirements between columns that apply to the rows we write."""
    category, correction = values["ChargeCategory"], values["ChargeClass"] == "Correction"
    rules = [
        ((values["PricingUnit"] is None) == (values["PricingQuantity"] is None),
         "PricingUnit must be null exactly when PricingQuantity is"),
        (not (category in ("Usage", "Purchase") and not correction and values["PricingQuantity"] is None),
         "PricingQuantity must be set on Usage and Purchase rows that are not corrections"),
        # no unit prices are published: list and contracted costs are the billed cost
        (values["ListCost"] == values["BilledCost"], "ListCost must equal BilledCost without a ListUnitPrice"),
        (values["ContractedCost"] == values["BilledCost"],
         "ContractedCost must equal BilledCost without a ContractedUnitPrice"),
    ]
    if category not in ("Usage", "Purchase"):
        rules.append((values["EffectiveCost"] == values["BilledCost"], "EffectiveCost must equal BilledCost"))
    if "ConsumedQuantity" in values:
        rules += [
            ((values["ConsumedUnit"] is None) == (values["ConsumedQuantity"] is None),
             "ConsumedUnit must be null exactly when ConsumedQuantity is"),
            (not (category == "Usage" and not correction and values["ConsumedQuantity"] is None),
             "ConsumedQuantity must be set on Usage rows that are not corrections"),
            (category == "Usage" or values["ConsumedQuantity"] is None,
             "ConsumedQuantity must be null unless ChargeCategory is Usage"),
        ]
    if "ResourceId" in values and "ResourceType" in values:
        rules.append(((values["ResourceType"] is None) == (values["ResourceId"] is None),
                      "ResourceType must be null exactly when ResourceId is"))
    if "ServiceSubcategory" in values:
        rules.append((SERVICE_SUBCATEGORIES.get(values["ServiceSubcategory"]) == values["ServiceCategory"],
                      "ServiceSubcategory must belong to its ServiceCategory"))
    for holds, message in rules:
        if not holds:
            raise FocusError(f"row {row}: {message}")


def metadata(generator: str) -> dict:
    """The dataset's schema metadata (FOCUS Metadata: FocusVersion, DataGenerator, ColumnDefinition)."""
    types = {STRING: "STRING", DECIMAL: "DECIMAL", DATETIME: "DATETIME", JSON: "JSON"}
    definitions = [{"ColumnName": column.column_id, "DataType": types[column.data_type]}
                   | ({"StringEncoding": "UTF-8"} if column.data_type == STRING else {})
                   | ({"ProviderTagPrefixes": []} if column.data_type == JSON else {})
                   for column in COLUMNS]
    definitions += [{"ColumnName": name, "DataType": "STRING", "StringEncoding": "UTF-8"} for name, _ in CUSTOM_COLUMNS]
    return {"SchemaId": f"billing-usage-focus-{FOCUS_VERSION}", "FocusVersion": FOCUS_VERSION,
            "DataGenerator": {"DataGenerator": generator}, "ColumnDefinition": definitions}


def _instant(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unit(unit: str | None, metric: str) -> str:
    if unit not in UNITS:
        raise FocusError(f"metric {metric} has unit {unit!r}, which has no FOCUS unit: add it to UNITS")
    return UNITS[unit]


def _service(provider: str, metric: str) -> tuple[str, str, str]:
    if (provider, metric) not in SERVICES:
        raise FocusError(f"{provider} {metric} has no FOCUS service: add it to SERVICES")
    return SERVICES[(provider, metric)]


def charge_rows(data, agency: str) -> list[dict[str, str | None]]:
    """The FOCUS rows of one cycle (billing_usage.exports.data.CycleData): its usage per agent, then the
    corrections billed into it. Costs are settled costs (pending prices are not in them yet)."""
    cycle = data.cycle
    coverage = {(line["provider"], line["metric"]): line["coverage_status"] for line in data.lines}
    account = {"BillingAccountId": cycle.client_id, "BillingAccountName": cycle.client_name,
               "SubAccountId": cycle.client_id, "SubAccountName": cycle.client_name,
               "BillingCurrency": "USD", "BillingPeriodStart": _instant(cycle.cycle_start),
               "BillingPeriodEnd": _instant(cycle.cycle_end), "InvoiceId": cycle.cycle_id,
               "InvoiceIssuerName": agency, "ProviderName": agency, "ChargeCategory": "Usage",
               "ChargeFrequency": "Usage-Based"}
    rows = []
    for usage in data.agent_usage:
        provider, metric, agent = usage["provider"], usage["metric"], usage["agent_id"]
        cost, unit = decimal_text(usage["cost_usd"] or 0), _unit(usage["unit"], metric)
        service, category, subcategory = _service(provider, metric)
        quantity = decimal_text(usage["quantity"] or 0)
        tags = {"client": cycle.client_id} | ({"agent": agent} if agent else {})
        rows.append(account | {
            "BilledCost": cost, "EffectiveCost": cost, "ListCost": cost, "ContractedCost": cost,
            "ChargeClass": None,
            "ChargeDescription": f"{PUBLISHERS[provider]} {metric.replace('_', ' ')} of "
                                 f"{'agent ' + agent if agent else 'client-level resources'} in the cycle "
                                 f"{cycle.local_start_date} to {cycle.local_end_date or _instant(cycle.cycle_end)}",
            "ChargePeriodStart": _instant(usage["cycle_start"]), "ChargePeriodEnd": _instant(usage["cycle_end"]),
            "PricingQuantity": quantity, "PricingUnit": unit, "ConsumedQuantity": quantity, "ConsumedUnit": unit,
            "PublisherName": PUBLISHERS[provider], "ServiceName": service, "ServiceCategory": category,
            "ServiceSubcategory": subcategory,
            "ResourceId": agent, "ResourceName": usage["agent_name"] if agent else None,
            "ResourceType": "Voice Agent" if agent else None, "Tags": json.dumps(tags, sort_keys=True),
            "x_CycleId": cycle.cycle_id, "x_CycleStatus": usage["cycle_status"],
            "x_CoverageStatus": coverage.get((provider, metric)), "x_Metric": metric,
            "x_EventCount": str(usage["event_count"]), "x_PendingEvents": str(usage["pending_events"]),
            "x_ExpiredEvents": str(usage["expired_events"]), "x_AdjustmentId": None, "x_AdjustmentReason": None,
        })
    units = {(line["provider"], line["metric"]): line["unit"] for line in data.lines}
    for adjustment in data.adjustments:
        provider, metric = adjustment["provider"], adjustment["metric"]
        cost, unit = decimal_text(adjustment["delta_cost_usd"]), _unit(units.get((provider, metric)), metric)
        service, category, subcategory = _service(provider, metric)
        quantity = decimal_text(adjustment["delta_quantity"])
        rows.append(account | {
            "BilledCost": cost, "EffectiveCost": cost, "ListCost": cost, "ContractedCost": cost,
            "ChargeClass": "Correction",
            "ChargeDescription": f"Correction of {PUBLISHERS[provider]} {metric.replace('_', ' ')} in the closed cycle "
                                 f"{adjustment['cycle_id']} ({adjustment['reason'].replace('_', ' ')})",
            "ChargePeriodStart": _instant(adjustment["corrected_cycle_start"]),
            "ChargePeriodEnd": _instant(adjustment["corrected_cycle_end"]),
            "PricingQuantity": quantity, "PricingUnit": unit, "ConsumedQuantity": quantity, "ConsumedUnit": unit,
            "PublisherName": PUBLISHERS[provider], "ServiceName": service, "ServiceCategory": category,
            "ServiceSubcategory": subcategory, "ResourceId": None, "ResourceName": None, "ResourceType": None,
            "Tags": json.dumps({"client": cycle.client_id}, sort_keys=True),
            "x_CycleId": adjustment["cycle_id"], "x_CycleStatus": "closed",
            "x_CoverageStatus": coverage.get((provider, metric)), "x_Metric": metric, "x_EventCount": None,
            "x_PendingEvents": None, "x_ExpiredEvents": None, "x_AdjustmentId": adjustment["adjustment_id"],
            "x_AdjustmentReason": adjustment["reason"],
        })
    return [{name: row[name] for name in HEADER} for row in rows]
