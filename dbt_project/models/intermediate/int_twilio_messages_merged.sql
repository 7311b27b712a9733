{# One row per Twilio message. Polled messages carry price and segments and win; a message known
   only from status callbacks has neither yet. #}
with polled as (

    select
        message_sid, account_sid, messaging_service_sid, message_type, direction, status, from_number,
        to_number, coalesce(sent_at, created_at) as occurred_at, segments, media_count, cost, currency,
        observed_at, 'poll' as channel
    from {{ ref('stg_twilio__messages') }}

),

delivered as (

    select
        message_sid, account_sid, messaging_service_sid, message_type,
        case when status in ('received', 'receiving') then 'inbound' else 'outbound-api' end as direction,
        status, from_number, to_number, observed_at as occurred_at, null::numeric as segments,
        null::numeric as media_count, null::numeric as cost, null::text as currency, observed_at,
        'webhook' as channel
    from {{ ref('stg_twilio__message_callbacks') }}

),

observations as (

    {{ union_by_name(['polled', 'delivered'], [
        'message_sid', 'account_sid', 'messaging_service_sid', 'message_type', 'direction', 'status',
        'from_number', 'to_number', 'occurred_at', 'segments', 'media_count', 'cost', 'currency',
        'observed_at', 'channel',
    ]) }}

),

{{ pick_observation('message_sid', "channel = 'poll' desc, observed_at desc") }}
