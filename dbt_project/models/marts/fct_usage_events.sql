{# The canonical UsageEvent (DESIGN.md section 3): one row per provider object and metric. #}
with events as (

    select * from {{ ref('int_usage_events__checked') }}
    where quarantine_reason is null

)

select
    md5(idempotency_key) as usage_event_id,
    idempotency_key,
    provider,
    object_type,
    metric,
    unit,
    quantity,
    cost_usd,
    currency,
    cost_native,
    occurred_at,
    (occurred_at at time zone 'UTC')::date as usage_date,
    client_id,
    agent_id,
    attribution_status,
    external_id,
    linked_external_id,
    string_to_array(source_channels, ',') as source_channels,
    first_seen_at,
    last_observed_at as last_changed_at,
    attributes

from events
