{# UTC day x client x provider x metric (no agent): what the reporting API reads for whole UTC days when the
   agent is not asked for (a tenth of fct_daily_usage's rows with ten agents a client). Summed from
   fct_daily_usage, day by day like it: a build rebuilds the days whose events changed up to where
   fct_daily_usage has processed them, and a backfill's days. #}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ clear_usage_days(built_from='fct_daily_usage') }}",
    post_hook="{{ advance_rollup_watermark() }}",
    indexes=[{'columns': ['usage_date']}, {'columns': ['client_id', 'usage_date']}],
) }}

select
    usage_date,
    client_id,
    provider,
    metric,
    unit,
    sum(quantity) as quantity,
    sum(cost_usd) as cost_usd,
    sum(event_count)::bigint as event_count,
    sum(pending_events)::bigint as pending_events,
    sum(expired_events)::bigint as expired_events,
    max(observed_through) as observed_through

from {{ ref('fct_daily_usage') }}
where {{ usage_days_to_rebuild() }}
group by usage_date, client_id, provider, metric, unit
