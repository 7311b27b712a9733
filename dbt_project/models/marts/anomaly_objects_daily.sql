{# UTC day x provider x collector account x client: the events and distinct provider objects the anomaly
   rules count (billed objects against quarantined ones, silent accounts, the clients of an account), so they
   read a few rows a day instead of every event of their window. Incremental by UTC day exactly like
   fct_daily_usage. An object's events share its day, account and client, so its objects add up across rows. #}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ clear_usage_days() }}",
    post_hook="{{ advance_rollup_watermark() }}",
    indexes=[{'columns': ['usage_date']}],
) }}

with objects as (

    {#- one row per provider object first (hashed), then counted: count(distinct) sorted every event #}
    select
        usage_date,
        provider,
        case provider
            when 'twilio' then attributes ->> 'account_sid'
            when 'retell' then attributes ->> 'workspace'
        end as account,
        client_id,
        count(*) as event_count
    from {{ ref('fct_usage_events') }}
    where {{ usage_days_to_rebuild() }}
    group by usage_date, provider, account, client_id, object_type, external_id

)

select
    usage_date,
    provider,
    account,
    client_id,
    sum(event_count)::bigint as event_count,
    count(*) as object_count,
    {{ usage_observed_through() }} as observed_through

from objects
group by usage_date, provider, account, client_id
