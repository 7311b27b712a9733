{# UTC day x Twilio subaccount x Usage Record category (calls, sms, mms; null for what none of them bills):
   our side of the Twilio coverage comparisons, so coverage_comparisons reads a few rows a day instead of
   every event of its window. Incremental by UTC day exactly like fct_daily_usage. #}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ clear_usage_days() }}",
    post_hook="{{ advance_rollup_watermark() }}",
    indexes=[{'columns': ['usage_date']}],
) }}

with events as (

    select
        usage_date,
        attributes ->> 'account_sid' as account,
        case metric
            when 'voice_minutes' then 'calls'
            when 'sms_segments' then 'sms'
            when 'mms_messages' then 'mms'
        end as category,
        quantity,
        cost_usd,
        cost_status,
        -- SIP and Client calls bill under trunking-* / their own categories, never under calls
        coalesce(metric = 'voice_minutes' and (
            attributes ->> 'direction' like 'trunking%'
            or (attributes ->> 'sip_or_client')::boolean), false)
            as sip_or_client,
        coalesce(metric = 'voice_minutes'
                 and attributes ->> 'status' in ('busy', 'failed', 'no-answer', 'canceled'), false)
            as unbilled_status
    from {{ ref('fct_usage_events') }}
    where provider = 'twilio' and {{ usage_days_to_rebuild() }}

)

select
    usage_date,
    account,
    category,
    count(*) filter (where not sip_or_client) as objects,
    coalesce(sum(quantity) filter (where not sip_or_client), 0) as quantity,
    coalesce(sum(cost_usd) filter (where not sip_or_client), 0) as cost_usd,
    count(*) filter (where sip_or_client) as sip_or_client_objects,
    count(*) filter (where unbilled_status and not sip_or_client) as unbilled_objects,
    count(*) filter (where cost_status = 'expired' and not sip_or_client) as expired_events,
    count(*) filter (where cost_status = 'pending') as pending_events,
    {{ usage_observed_through() }} as observed_through

from events
group by usage_date, account, category
