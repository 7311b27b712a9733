"""Every table billing-usage writes outside dlt and dbt, defined here and nowhere else: the ops schema
(collector state and runs, incremental watermarks, retention purges, the PII salt) and the webhook
landing tables. ensure_tables() runs before any build, receiver or collector writes.

dbt reads the salt from ops.pii_salt, so it never appears in compiled SQL, dbt logs or run arguments.
"""

from __future__ import annotations

OPS_DDL = """
create schema if not exists ops;
create table if not exists ops.collector_state (
    source text not null,
    resource text not null,
    account text not null,
    cursor_position text,
    last_success_at timestamptz,
    last_attempt_at timestamptz not null,
    rows_last_run bigint,
    requests_last_run bigint,
    retries_last_run bigint,
    warning text,
    last_error text,
    last_error_at timestamptz,
    consecutive_failures integer not null default 0,
    primary key (source, resource, account)
);
create table if not exists ops.collector_runs (
    run_id text not null,
    source text not null,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    succeeded boolean not null,
    rows_loaded bigint,
    error text
);
create table if not exists ops.pii_salt (
    only_row boolean primary key default true check (only_row),
    salt text not null
);
create table if not exists ops.usage_event_watermarks (
    raw_table text primary key,            -- a registry table (source.table), or 'directory'
    processed text,                        -- how far the last successful fct_usage_events build read
    pending text                           -- how far the build under way reads
);
create table if not exists ops.usage_event_changes (
    client_id text,                        -- a client x UTC day whose events fct_usage_events rewrote or removed
    usage_date date,                       -- (before and after the change): the rollups recompute it
    changed_at timestamptz not null default clock_timestamp()
);
drop table if exists ops.usage_event_removals;  -- the day rollups read usage_event_changes instead
create index if not exists usage_event_changes_changed_at on ops.usage_event_changes (changed_at);
create table if not exists ops.rollup_watermarks (
    model text primary key,                -- a model that reads ops.usage_event_changes
    processed timestamptz,                 -- the last change its last successful build read
    pending timestamptz                    -- the last change the build under way reads
);
create table if not exists ops.alerts (
    alert_id text primary key,             -- one per transition: a check failing or recovering, a run failing
    kind text not null,                    -- check_failed | check_recovered | run_failed
    subject text not null,                 -- asset:check, or job name
    severity text,
    message text not null,
    happened_at timestamptz not null,
    sent_at timestamptz,                   -- null: no webhook configured (or not delivered yet)
    delivery text                          -- how it went out: slack, json, logged
);
create table if not exists ops.retention_purges (
    cycle_id text primary key,
    client_id text not null,
    cycle_start timestamptz not null,
    cycle_end timestamptz not null,
    cutoff timestamptz not null,
    events_purged bigint not null,
    cost_usd_purged numeric,
    purged_at timestamptz not null default now()
);
create table if not exists ops.api_tokens (
    token_id text primary key,             -- the public part of a reporting API token (bu_<token_id>_<secret>)
    token_hash text not null,              -- sha256 of the whole token: the token itself is never stored
    client_id text,                        -- null: an agency token, which sees every client
    label text,
    created_at timestamptz not null default now(),
    revoked_at timestamptz                 -- set by `python -m cli.api_tokens revoke`: refused from then on
);
"""

LANDING_DDL = """
create schema if not exists raw_webhooks;
create table if not exists raw_webhooks.retell_events (
    delivery_id text primary key,          -- sha256 of the raw body: a replay is the same delivery
    event text not null,
    call_id text not null,
    payload jsonb not null,                -- the delivered JSON as received
    received_at timestamptz not null default clock_timestamp()
);
create index if not exists retell_events_received_at on raw_webhooks.retell_events (received_at);
create index if not exists retell_events_call_id on raw_webhooks.retell_events (call_id);
create table if not exists raw_webhooks.twilio_callbacks (
    delivery_id text primary key,          -- sha256 of the raw body
    resource text not null,                -- call or message
    sid text not null,
    account_sid text not null,
    status text,
    params jsonb not null,                 -- every parameter, new ones included; a repeated one as an array
    received_at timestamptz not null default clock_timestamp()
);
create index if not exists twilio_callbacks_received_at on raw_webhooks.twilio_callbacks (received_at);
create index if not exists twilio_callbacks_sid on raw_webhooks.twilio_callbacks (sid);
create table if not exists raw_webhooks.dead_letters (
    id bigint generated always as identity primary key,
    delivery_id text not null unique,      -- sha256 of the raw body: a retried delivery is kept once
    provider text not null,
    reason text not null,                  -- why it could not be landed (never quotes the body)
    body bytea not null,                   -- the signed body, byte for byte
    content_type text,
    received_at timestamptz not null default clock_timestamp()
);
"""

LANDING_TABLES = {
    "retell": ("raw_webhooks.retell_events", ("delivery_id", "event", "call_id", "payload")),
    "twilio": ("raw_webhooks.twilio_callbacks", ("delivery_id", "resource", "sid", "account_sid", "status", "params")),
}
DEAD_LETTERS = "raw_webhooks.dead_letters"



def ensure_tables(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute(OPS_DDL + LANDING_DDL)
    connection.commit()


def store_pii_salt(connection, salt: str) -> None:
    """The salt phone numbers are hashed with; changing it changes every hash (rebuild with --full-refresh)."""
    ensure_tables(connection)
    with connection.cursor() as cursor:
        cursor.execute("insert into ops.pii_salt (salt) values (%s) on conflict (only_row) do update "
                       "set salt = excluded.salt where ops.pii_salt.salt is distinct from excluded.salt", (salt,))
    connection.commit()
