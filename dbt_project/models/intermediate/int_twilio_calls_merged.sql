{# One row per Twilio call leg. Polled legs carry the price and win; a leg known only from status
   callbacks (not polled yet) takes its latest callback, with the cost still unknown. #}
with polled as (

    select
        call_sid, account_sid, parent_call_sid, direction, status, from_number, to_number,
        coalesce(started_at, created_at) as occurred_at, duration_seconds, billed_minutes, cost, currency,
        observed_at, 'poll' as channel
    from {{ ref('stg_twilio__calls') }}

),

delivered as (

    select
        call_sid, account_sid, parent_call_sid, direction, status, from_number, to_number,
        coalesce(event_at - make_interval(secs => coalesce(duration_seconds, 0)), observed_at) as occurred_at,
        duration_seconds, ceil(duration_seconds / 60.0)::integer as billed_minutes, null::numeric as cost,
        null::text as currency, observed_at, 'webhook' as channel
    from {{ ref('stg_twilio__call_callbacks') }}

),

observations as (

    {{ union_by_name(['polled', 'delivered'], [
        'call_sid', 'account_sid', 'parent_call_sid', 'direction', 'status', 'from_number', 'to_number',
        'occurred_at', 'duration_seconds', 'billed_minutes', 'cost', 'currency', 'observed_at', 'channel',
    ]) }}

),

{{ pick_observation('call_sid', "channel = 'poll' desc, duration_seconds is not null desc, observed_at desc") }}
