{# The canonical UsageEvent (docs/canonical-event.md): one row per provider object and metric.
   Incremental: a run recomputes only the objects changed since the last one (see
   changed_usage_objects); first_seen_at is kept, last_changed_at moves only when the event changes.
   Its strategy (replace_usage_events) replaces every stored row of the recomputed objects, so rows no
   longer billable (quarantined, or a metric gone) go, and logs their client-days in ops.usage_event_changes
   for the models downstream. cost_status says whether the provider's price has settled; a pending one
   past var('pending_max_age_days') is expired (and recomputed once to say so). The occurred_at index serves
   the reporting API's time ranges, (client_id, occurred_at) the partial days of billing cycles, the partial
   index on pending events the collectors' list of prices to fetch again; post-hooks create them, so tables
   built before them get them too. #}
{% set changed = changed_usage_objects() %}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_usage_events',
    unique_key='usage_event_id',
    on_schema_change='append_new_columns',
    indexes=[
      {'columns': ['provider', 'object_type', 'external_id']},
      {'columns': ['usage_date']},
      {'columns': ['last_observed_at']},
    ],
    pre_hook=["{{ pin_usage_event_watermarks() }}", "{{ trim_usage_event_changes() }}"],
    post_hook=["{{ log_all_usage_event_changes() }}", "{{ advance_usage_event_watermarks() }}",
               "{{ ensure_index(this, 'occurred_at') }}", "{{ ensure_index(this, ['client_id', 'occurred_at']) }}",
               "{{ ensure_index(this, 'provider', where=\"(cost_status = 'pending'::text)\") }}"],
) }}

with events as (

    select * from {{ ref('int_usage_events_checked') }}
    where quarantine_reason is null
      and {{ changed }}

),

shaped as (

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
        last_observed_at,
        attributes,
        {{ cost_status('cost_native', 'occurred_at') }} as cost_status
    from events

)

select
    shaped.usage_event_id,
    shaped.idempotency_key,
    shaped.provider,
    shaped.object_type,
    shaped.metric,
    shaped.unit,
    shaped.quantity,
    shaped.cost_usd,
    shaped.currency,
    shaped.cost_native,
    shaped.occurred_at,
    shaped.usage_date,
    shaped.client_id,
    shaped.agent_id,
    shaped.attribution_status,
    shaped.external_id,
    shaped.linked_external_id,
    shaped.source_channels,
    {% if is_incremental() -%}
    least(previous.first_seen_at, shaped.first_seen_at) as first_seen_at,
    case
        when previous.usage_event_id is not null and {{ usage_event_content('previous') }} = {{ usage_event_content('shaped') }}
            then previous.last_changed_at
        else shaped.last_observed_at
    end as last_changed_at,
    {%- else -%}
    shaped.first_seen_at,
    shaped.last_observed_at as last_changed_at,
    {%- endif %}
    shaped.last_observed_at,
    shaped.attributes,
    shaped.cost_status

from shaped
{% if is_incremental() -%}
left join {{ this }} as previous on previous.usage_event_id = shaped.usage_event_id
{%- endif %}
