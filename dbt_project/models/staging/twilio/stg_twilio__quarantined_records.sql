{# Calls and messages the collector could not load (no sid), kept whole with the reason. #}
with calls as (

    select 'call' as object_type, sid as quarantine_key, reason, account, record, seen_at
    from {{ raw_source('twilio', 'calls_quarantine') }}

),

messages as (

    select 'message' as object_type, sid as quarantine_key, reason, account, record, seen_at
    from {{ raw_source('twilio', 'messages_quarantine') }}

),

records as (

    {{ union_by_name(['calls', 'messages'], ['object_type', 'quarantine_key', 'reason', 'account', 'record', 'seen_at']) }}

)

select
    object_type,
    quarantine_key,
    reason,
    account,
    record,
    {{ twilio_charge_usd("record ->> 'price'") }} as cost_native,
    upper(record ->> 'price_unit') as currency,
    coalesce(
        {{ rfc2822_to_timestamptz("record ->> 'date_sent'") }},
        {{ rfc2822_to_timestamptz("record ->> 'date_created'") }}
    ) as occurred_at,
    seen_at

from records
