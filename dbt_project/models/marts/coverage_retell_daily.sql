{# UTC day x Retell workspace x Retell agent x client: the calls our polling listed and the webhooks
   delivered, our side of the Retell webhook coverage, so coverage_comparisons reads a few rows a day
   instead of every event of its window. Incremental by UTC day exactly like fct_daily_usage. A call's
   events share its day, workspace, agent and client, so its calls add up across rows. #}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ clear_usage_days() }}",
    post_hook="{{ advance_rollup_watermark() }}",
    indexes=[{'columns': ['usage_date']}],
) }}

with calls as (

    select
        usage_date,
        max(client_id) as client_id,
        max(attributes ->> 'workspace') as workspace,
        max(attributes ->> 'retell_agent_id') as retell_agent_id,
        bool_or('poll' = any(source_channels)) as polled,
        bool_or('webhook' = any(source_channels)) as delivered,
        bool_or(cost_status = 'pending') as pending
    from {{ ref('fct_usage_events') }}
    where provider = 'retell' and {{ usage_days_to_rebuild() }}
    group by usage_date, external_id

)

select
    usage_date,
    workspace,
    retell_agent_id,
    client_id,
    count(*) filter (where polled) as polled_calls,
    count(*) filter (where delivered) as delivered_calls,
    count(*) filter (where pending) as pending_calls,
    {{ usage_observed_through() }} as observed_through

from calls
group by usage_date, workspace, retell_agent_id, client_id
