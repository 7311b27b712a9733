{# UTC day x client x agent x provider x metric. Incremental by day: a build rebuilds only the days
   whose events changed (or were removed) since the last one, and a backfill's days. #}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ clear_usage_days() }}",
    post_hook="{{ advance_rollup_watermark() }}",
    indexes=[{'columns': ['usage_date']}, {'columns': ['client_id', 'usage_date']}],
) }}

select
    usage_date,
    client_id,
    agent_id,
    provider,
    metric,
    unit,
    {{ usage_measures() }},
    {{ usage_observed_through() }} as observed_through

from {{ ref('fct_usage_events') }}
where {{ usage_days_to_rebuild() }}
group by usage_date, client_id, agent_id, provider, metric, unit
