"""Alerts: each asset check that starts failing or passes again, and each failed run, sent once to a webhook.

One sensor, one cursor. Check evaluations (ASSET_CHECK_EVALUATION) and run failures (RUN_FAILURE) are
both read from Dagster's event log by storage id, the one order both kinds share (they sit in the same
index table in SQLite and in dagster-postgres), so a single number says how far the sensor has read and
the events are replayed in the order they happened. A run_failure_sensor beside a check sensor would
keep two cursors over two streams and interleave their messages by accident; one sensor is simpler to
reason about and to test.

An alert is a transition, not an evaluation. The cursor also holds the checks failing now (subject ->
severity of the failure); an evaluation that fails a check not in that set is `check_failed`, one that
passes a check in it is `check_recovered`, every other evaluation only moves the cursor. So a check that
fails five times in a row alerts once, and once more when it passes. Each run failure is `run_failed`
(severity ERROR). A check's severity (WARN/ERROR) is passed through; a recovery carries the severity of
the failure it ends.

With no cursor yet (a new sensor, or its cursor reset) the sensor does not replay the history: it starts
at the end of the event log, as Dagster's own run status sensors do, and alerts the checks whose latest
completed evaluation failed, unless ops.alerts already holds a failure for them with no recovery after
it. Failed runs from before are not alerted.

ops.alerts is the outbox. Every transition is inserted there first (`alert_id` is a hash of the
evaluation or run it comes from, so deriving the same transition again, after a crash or a cursor
reset, inserts nothing), and the cursor moves only after that commit. Delivery then works through the
rows not yet out, oldest first, one locked row at a time: a POST answered 2xx sets `sent_at` and
`delivery` (slack or json); a failure leaves the row pending and is retried at the next evaluation, so
nothing is lost and a delivered alert is never sent again (a crash between the POST and its commit is
the only way to send one twice). With no webhook configured the alert is logged and marked `logged`.

The webhook URL (BILLING_USAGE_ALERTS_WEBHOOK_URL) is a secret: it is read from the settings at delivery
time and appears in no message, log line, sensor result or table. Delivery uses urllib, which logs
nothing (urllib3's debug log prints request paths, where Slack keeps its token), and a failure is
reported by its HTTP status or exception class, never by the exception's text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import (
    AssetCheckKey,
    DagsterEventType,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from billing_usage.settings import Settings
from billing_usage.tables import ensure_tables
from dagster_project.resources import WarehouseResource

CHECK_FAILED, CHECK_RECOVERED, RUN_FAILED = "check_failed", "check_recovered", "run_failed"
EVENT_TYPES = (DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.RUN_FAILURE)
PAGE_SIZE = 1000  # events read per type and evaluation; more wait for the next evaluation
MAX_DELIVERIES = 50  # POSTs per evaluation
DELIVERY_BUDGET_SECONDS = 30.0  # a sensor evaluation times out after 60 s
POST_TIMEOUT_SECONDS = 10.0
MAX_HIGHLIGHTS = 6
logger = logging.getLogger(__name__)
LINK = re.compile(r"\b(?:https?|ftp)://[^\s<>()\[\]]+|\bwww\.[^\s<>()\[\]]+", re.IGNORECASE)


@dataclass(frozen=True)
class Alert:
    alert_id: str
    kind: str
    subject: str
    severity: str | None
    message: str  # first line: the header; then description, metadata highlights, run
    happened_at: datetime


@dataclass
class AlertCursor:
    after: int  # storage id of the last event read
    failing: dict[str, str] = field(default_factory=dict)  # check subject -> severity of its failure

    def serialize(self) -> str:
        return json.dumps({"after": self.after, "failing": self.failing}, sort_keys=True)

    @classmethod
    def parse(cls, text: str | None) -> AlertCursor | None:
        if not text:
            return None
        value = json.loads(text)
        return cls(after=int(value["after"]), failing=dict(value.get("failing") or {}))


# --- transitions -------------------------------------------------------------------------------------


def read_events(storage, after: int, limit: int = PAGE_SIZE) -> list[tuple[int, object]]:
    """(storage id, EventLogEntry) of check evaluations and run failures after `after`, in storage order.
    One query per event type; when a page is full, the merged list stops where that page stops, so the
    next read resumes without skipping the other type's events."""
    events: dict[int, object] = {}
    stop = None
    for event_type in EVENT_TYPES:
        page = storage.get_logs_for_all_runs_by_log_id(after_cursor=after, dagster_event_type=event_type,
                                                       limit=limit)
        events.update(page)
        if len(page) >= limit:
            stop = max(page) if stop is None else min(stop, max(page))
    return sorted(((storage_id, entry) for storage_id, entry in events.items() if stop is None or storage_id <= stop),
                  key=lambda item: item[0])


def derive(events: Sequence[tuple[int, object]], cursor: AlertCursor,
           descriptions: Mapping[AssetCheckKey, str] | None = None) -> tuple[list[Alert], AlertCursor]:
    """The alerts these events make, and the cursor after them (a pure function of events and cursor)."""
    failing = dict(cursor.failing)
    after = cursor.after
    alerts = []
    for storage_id, entry in events:
        after = max(after, storage_id)
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.RUN_FAILURE:
            alerts.append(run_alert(entry))
            continue
        evaluation = event.event_specific_data
        subject = check_subject(evaluation)
        description = (descriptions or {}).get(AssetCheckKey(evaluation.asset_key, evaluation.check_name))
        if not evaluation.passed and subject not in failing:
            failing[subject] = evaluation.severity.value
            alerts.append(check_alert(CHECK_FAILED, entry, evaluation.severity.value, description))
        elif evaluation.passed and subject in failing:
            alerts.append(check_alert(CHECK_RECOVERED, entry, failing.pop(subject), description))
    return alerts, AlertCursor(after=after, failing=failing)


def cold_start(instance, repository_def) -> tuple[list[Alert], AlertCursor]:
    """No cursor yet: start at the end of the event log; alert the checks whose last completed evaluation
    failed (the sensor drops those ops.alerts already lists as failing: see already_failing). The end is
    read first, so an evaluation stored meanwhile is read again and changes nothing."""
    storage = instance.event_log_storage
    after = storage.get_maximum_record_id() or 0
    keys = sorted(repository_def.asset_graph.asset_check_keys, key=str) if repository_def else []
    descriptions = check_descriptions(repository_def)
    alerts, failing = [], {}
    for key, summary in storage.get_asset_check_summary_records(keys).items():
        record = summary.last_completed_check_execution_record
        if record is None or record.status != AssetCheckExecutionRecordStatus.FAILED or record.event is None:
            continue
        evaluation = record.event.dagster_event.event_specific_data
        failing[check_subject(evaluation)] = evaluation.severity.value
        alerts.append(check_alert(CHECK_FAILED, record.event, evaluation.severity.value, descriptions.get(key)))
    return alerts, AlertCursor(after=after, failing=failing)


def check_descriptions(repository_def) -> dict[AssetCheckKey, str]:
    if repository_def is None:
        return {}
    graph = repository_def.asset_graph
    return {key: graph.get_check_spec(key).description for key in graph.asset_check_keys
            if graph.get_check_spec(key).description}


def check_subject(evaluation) -> str:
    return f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"


def alert_id(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()[:32]


def check_alert(kind: str, entry, severity: str, description: str | None) -> Alert:
    evaluation = entry.dagster_event.event_specific_data
    subject = check_subject(evaluation)
    name = f"{evaluation.asset_key.to_user_string()} · {evaluation.check_name}"
    if kind == CHECK_FAILED:
        header = f"[{severity}] Check failed: {name}"
    else:
        header = f"[OK] Check passes again (was {severity}): {name}"
    lines = [header]
    text = evaluation.description or description
    if text:
        lines.append(_plain(text, 500))
    highlights = metadata_highlights(evaluation.metadata)
    if highlights:
        lines.append(" · ".join(highlights))
    lines.append(_run_line(entry, evaluation.partition))
    return Alert(
        alert_id=alert_id(kind, subject, entry.run_id, evaluation.partition or "", repr(entry.timestamp)),
        kind=kind, subject=subject, severity=severity, message="\n".join(lines),
        happened_at=datetime.fromtimestamp(entry.timestamp, UTC),
    )


def run_alert(entry) -> Alert:
    event = entry.dagster_event
    job = entry.job_name or event.job_name or "unknown job"
    lines = [f"[ERROR] Run failed: {job}", _plain(event.message or "The run failed.", 500)]
    data = event.event_specific_data
    cause = _root_cause(data)
    if cause:
        lines.append(cause)
    lines.append(_run_line(entry, None))
    return Alert(alert_id=alert_id(RUN_FAILED, entry.run_id), kind=RUN_FAILED, subject=job, severity="ERROR",
                 message="\n".join(lines), happened_at=datetime.fromtimestamp(entry.timestamp, UTC))


def _root_cause(data) -> str | None:
    """The first step failure's innermost error, one line: what an on-call person reads first."""
    step_failure = getattr(data, "first_step_failure_event", None)
    error = getattr(getattr(step_failure, "event_specific_data", None), "error", None) or getattr(data, "error", None)
    if error is None:
        return None
    while error.cause is not None:
        error = error.cause
    first_line = (error.message or "").strip().splitlines()[0] if (error.message or "").strip() else error.cls_name
    return _plain(first_line, 300) if first_line else None


def _run_line(entry, partition: str | None) -> str:
    job = f" ({entry.job_name})" if entry.job_name else ""
    return f"Run {entry.run_id}{job}" + (f", partition {partition}" if partition else "")


def metadata_highlights(metadata: Mapping[str, object]) -> list[str]:
    """`label: value` for the first scalar metadata entries (text, numbers, booleans); links, paths,
    tables, JSON and markdown are left out."""
    highlights = []
    for label, value in (metadata or {}).items():
        kind = type(value).__name__
        if kind not in ("TextMetadataValue", "IntMetadataValue", "FloatMetadataValue", "BoolMetadataValue"):
            continue
        highlights.append(f"{_plain(str(label), 60)}: {_plain(str(value.value), 120)}")
        if len(highlights) == MAX_HIGHLIGHTS:
            break
    return highlights


def _plain(text: str, limit: int) -> str:
    """One line, links removed, at most `limit` characters."""
    text = LINK.sub("[link removed]", " ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- ops.alerts and delivery ---------------------------------------------------------------------------


def already_failing(connection) -> set[str]:
    """Checks whose last alert in ops.alerts is a failure: told already, even if the cursor was lost since."""
    with connection.cursor() as cursor:
        cursor.execute("select subject from (select distinct on (subject) subject, kind from ops.alerts "
                       "where kind in (%s, %s) order by subject, happened_at desc, alert_id) last where kind = %s",
                       (CHECK_FAILED, CHECK_RECOVERED, CHECK_FAILED))
        subjects = {subject for (subject,) in cursor.fetchall()}
    connection.rollback()
    return subjects


def record(connection, alerts: Sequence[Alert]) -> int:
    """Insert the transitions not recorded yet; returns how many are new."""
    new = 0
    with connection.cursor() as cursor:
        for alert in alerts:
            cursor.execute(
                "insert into ops.alerts (alert_id, kind, subject, severity, message, happened_at) "
                "values (%s, %s, %s, %s, %s, %s) on conflict (alert_id) do nothing",
                (alert.alert_id, alert.kind, alert.subject, alert.severity, alert.message, alert.happened_at))
            new += cursor.rowcount
    connection.commit()
    return new


def payload(alert: Alert, fmt: str) -> dict:
    header, _, body = alert.message.partition("\n")
    if fmt == "json":
        return {"kind": alert.kind, "subject": alert.subject, "severity": alert.severity, "message": alert.message,
                "happened_at": alert.happened_at.astimezone(UTC).isoformat(), "alert_id": alert.alert_id,
                "source": "billing-usage"}
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": _clip(header, 150), "emoji": False}}]
    if body:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(_slack_escape(body), 3000)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(
        f"{alert.kind} · {alert.happened_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC · alert {alert.alert_id}")}]})
    return {"text": _slack_escape(header), "blocks": blocks}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class DeliveryError(Exception):
    """A POST that did not succeed. The message names the HTTP status or the exception class, never the URL."""

    def __init__(self, reason: str, retry_later: bool):
        super().__init__(reason)
        self.retry_later = retry_later  # the endpoint is down or busy: stop for this evaluation


def post(url: str, body: dict) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "billing-usage"})
    try:
        with urllib.request.urlopen(request, timeout=POST_TIMEOUT_SECONDS) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DeliveryError(f"HTTP {exc.code}", retry_later=exc.code >= 500 or exc.code in (408, 429)) from None
    except urllib.error.URLError as exc:
        raise DeliveryError(type(exc.reason).__name__ if isinstance(exc.reason, BaseException) else "URLError",
                            retry_later=True) from None
    except Exception as exc:  # timeouts, resets, malformed answers: the class name only
        raise DeliveryError(type(exc).__name__, retry_later=True) from None


@dataclass
class DeliveryReport:
    delivered: int = 0
    logged: int = 0
    failed: list[str] = field(default_factory=list)  # "<kind> <subject>: <reason>"
    pending: int = 0


def deliver(connection, settings: Settings, tick_log=None) -> DeliveryReport:
    """Send (or, with no webhook, log) the alerts not yet out, oldest first, each row locked while it goes.
    Log lines go to this module's logger and, when given, to the sensor tick's log shown in the UI."""
    report = DeliveryReport()

    def warn(text: str) -> None:
        logger.warning(text)
        if tick_log is not None:
            tick_log.warning(text)

    url, fmt = settings.alerts_webhook_url, settings.alerts_format
    skipped: list[str] = []
    deadline = time.monotonic() + DELIVERY_BUDGET_SECONDS
    while report.delivered + len(report.failed) < MAX_DELIVERIES and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("select alert_id, kind, subject, severity, message, happened_at from ops.alerts "
                           "where sent_at is null and delivery is null and alert_id <> all(%s::text[]) "
                           "order by happened_at, alert_id limit 1 for update skip locked", (skipped,))
            row = cursor.fetchone()
            if row is None:
                break
            alert = Alert(*row)
            if url is None:
                warn(f"alert (no webhook configured, listed in ops.alerts): {alert.message}")
                cursor.execute("update ops.alerts set delivery = 'logged' where alert_id = %s", (alert.alert_id,))
                connection.commit()
                report.logged += 1
                continue
            try:
                post(url, payload(alert, fmt))
            except DeliveryError as exc:
                connection.rollback()
                report.failed.append(f"{alert.kind} {alert.subject}: {exc}")
                warn(f"alert {alert.alert_id} ({alert.kind} {alert.subject}) not delivered to the alerts "
                            f"webhook: {exc}; it stays in ops.alerts and is retried at the next evaluation")
                if exc.retry_later:
                    break
                skipped.append(alert.alert_id)
                continue
            cursor.execute("update ops.alerts set sent_at = clock_timestamp(), delivery = %s where alert_id = %s",
                           (fmt, alert.alert_id))
            connection.commit()
            report.delivered += 1
    connection.rollback()
    with connection.cursor() as cursor:
        cursor.execute("select count(*) from ops.alerts where sent_at is null and delivery is null")
        report.pending = cursor.fetchone()[0]
    connection.rollback()
    return report


@sensor(name="alerts_sensor", minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Each asset check that starts failing or passes again, and each failed run: one alert, "
                    "recorded in ops.alerts and sent to BILLING_USAGE_ALERTS_WEBHOOK_URL when set.")
def alerts_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    cursor = AlertCursor.parse(context.cursor)
    cold = cursor is None
    if cold:
        alerts, cursor = cold_start(context.instance, context.repository_def)
    else:
        events = read_events(context.instance.event_log_storage, cursor.after)
        alerts, cursor = derive(events, cursor, check_descriptions(context.repository_def))
    with closing(warehouse.warehouse.connect()) as connection:
        ensure_tables(connection)
        if cold:
            told = already_failing(connection)
            alerts = [alert for alert in alerts if alert.subject not in told]
        new = record(connection, alerts)  # committed before the cursor moves: a transition is never lost
        report = deliver(connection, warehouse.settings, context.log)
    summary = (f"{new} new alert(s); {report.delivered} delivered, {report.logged} logged (no webhook configured), "
               f"{report.pending} waiting for the webhook")
    if report.failed:
        summary += f"; not delivered: {', '.join(report.failed)}"
    return SensorResult(skip_reason=SkipReason(summary), cursor=cursor.serialize())
