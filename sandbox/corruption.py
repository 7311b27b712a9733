"""Bad records on request: what a pipeline must quarantine with a reason instead of billing or losing.

With SandboxConfig.corrupt_rate > 0, that share of records is damaged in one of the ways below,
chosen deterministically from the record's id. The damaged record keeps its cost where it has one,
so what was generated still sums to a known total.
"""

from __future__ import annotations

import random

from sandbox.config import SandboxConfig

KINDS = {
    "retell_call": ("missing_id", "negative_cost", "absurd_quantity", "unknown_metric"),
    "twilio_call": ("missing_id", "unparseable_timestamp", "unknown_currency", "negative_cost"),
    "twilio_message": ("negative_quantity", "unknown_metric", "missing_id"),
    "openrouter_activity": ("negative_cost",),
}


def corruption_kind(config: SandboxConfig, kind: str, record_id: str) -> str | None:
    if not config.corrupt_rate:
        return None
    rng = random.Random(f"{config.seed}:corrupt:{record_id}")
    if rng.random() >= config.corrupt_rate:
        return None
    return rng.choice(KINDS[kind])


def corrupt(config: SandboxConfig, kind: str, record: dict, record_id: str) -> dict:
    """The record, damaged if the dice say so (in place)."""
    damage = corruption_kind(config, kind, record_id)
    if damage is None:
        return record
    record["_sandbox_corruption"] = damage  # lets tests tell which records were damaged
    if damage == "missing_id":
        record.pop("call_id" if kind == "retell_call" else "sid", None)
    elif damage == "negative_cost":
        if kind == "retell_call":
            record["call_cost"]["combined_cost"] = -abs(record["call_cost"]["combined_cost"]) or -1.0
        elif kind == "twilio_call":
            record["price"] = record["price"].lstrip("-") if record["price"] != "0.00000" else "0.00100"
        else:
            record["usage"] = -abs(record["usage"])
    elif damage == "absurd_quantity":
        record["call_cost"]["total_duration_seconds"] = 10_000_000
    elif damage == "unknown_metric":
        if kind == "retell_call":
            record["call_type"] = "sip_trunk_call"
        else:
            record["sid"] = "XX" + record["sid"][2:]
    elif damage == "unparseable_timestamp":
        record["date_created"] = record["start_time"] = "not a date"
    elif damage == "unknown_currency":
        record["price_unit"] = "XTS"
    elif damage == "negative_quantity":
        record["num_segments"] = "-2"
    return record
