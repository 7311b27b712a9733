{# Every provider object we do not bill, with the reason: rows the collectors could not load
   (no id) and objects normalization rejected. Costs stay as reported, in their own currency.
   Incremental like fct_usage_events, with watermarks of its own that follow it: a build rewrites the rows
   of the objects whose raw rows fct_usage_events has processed since this model's last build, normalizing
   again only those fct_usage_events does not bill, and the collectors' few rejected records. #}
-- depends_on: {{ ref('fct_usage_events') }}
{% set unbilled = changed_usage_objects(unbilled_only=true) %}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook=["{{ pin_usage_event_watermarks() }}", "{{ clear_changed_quarantine() }}"],
    post_hook="{{ advance_usage_event_watermarks() }}",
    indexes=[{'columns': ['provider', 'object_type', 'external_id']}],
) }}

with rejected_events as (

    select
        idempotency_key as quarantine_id,
        'normalization' as stage,
        provider,
        object_type,
        external_id,
        metric,
        quarantine_reason as reason,
        quantity,
        cost_native,
        currency,
        occurred_at,
        first_seen_at,
        attributes as details
    from {{ ref('int_usage_events_checked') }}
    where quarantine_reason is not null
      and {{ unbilled }}

),

retell_collector as (

    select
        'retell:call:' || quarantine_key as quarantine_id,
        'collector' as stage,
        'retell' as provider,
        'call' as object_type,
        null::text as external_id,
        null::text as metric,
        reason,
        null::numeric as quantity,
        cost_native,
        currency,
        occurred_at,
        seen_at as first_seen_at,
        record - 'from_number' - 'to_number' as details
    from {{ ref('stg_retell__quarantined_calls') }}

),

twilio_collector as (

    select
        'twilio:' || object_type || ':' || quarantine_key as quarantine_id,
        'collector' as stage,
        'twilio' as provider,
        object_type,
        null::text as external_id,
        null::text as metric,
        reason,
        null::numeric as quantity,
        cost_native,
        currency,
        occurred_at,
        seen_at as first_seen_at,
        record - 'from' - 'to' - 'from_formatted' - 'to_formatted' - 'body' as details
    from {{ ref('stg_twilio__quarantined_records') }}

)

{{ union_by_name(['rejected_events', 'retell_collector', 'twilio_collector'], [
    'quarantine_id', 'stage', 'provider', 'object_type', 'external_id', 'metric', 'reason', 'quantity',
    'cost_native', 'currency', 'occurred_at', 'first_seen_at', 'details',
]) }}
