{# UTC day x client x provider x metric (no agent): what the reporting API reads for whole UTC days when the
   agent is not asked for (a tenth of fct_daily_usage's rows with ten agents a client). Incremental by UTC day
   exactly like fct_daily_usage. #}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ clear_usage_days() }}",
    indexes=[{'columns': ['usage_date']}, {'columns': ['client_id', 'usage_date']}],
) }}

select
    usage_date,
    client_id,
    provider,
    metric,
    unit,
    {{ usage_measures() }},
    {{ usage_observed_through() }} as observed_through

from {{ ref('fct_usage_events') }}
where {{ usage_days_to_rebuild() }}
group by usage_date, client_id, provider, metric, unit
