{# UTC hour x client x provider x metric (no agent): what the reporting API reads for windows whose edges fall
   on UTC hours but not on UTC midnights, such as days and months in a client's time zone. Incremental by
   UTC day exactly like fct_daily_usage: a build rebuilds only the days whose events changed or were removed
   since the last one, and a backfill's days. #}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ clear_usage_days() }}",
    post_hook="{{ advance_rollup_watermark() }}",
    indexes=[{'columns': ['usage_hour']}, {'columns': ['client_id', 'usage_hour']}, {'columns': ['usage_date']}],
) }}

select
    date_trunc('hour', occurred_at at time zone 'UTC') at time zone 'UTC' as usage_hour,
    usage_date,
    client_id,
    provider,
    metric,
    unit,
    {{ usage_measures() }},
    {{ usage_observed_through() }} as observed_through

from {{ ref('fct_usage_events') }}
where {{ usage_days_to_rebuild() }}
group by 1, usage_date, client_id, provider, metric, unit
