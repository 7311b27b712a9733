{# Calls and messages the collector could not load (no sid, a mistyped field), kept whole with the reason;
   one quarantined for a mistyped field no longer is once the provider has sent it loadable. #}
with loaded as (

    select 'call' as object_type, sid from {{ raw_source('twilio', 'calls') }}
    union all
    select 'message', sid from {{ raw_source('twilio', 'messages') }}

),

calls as (

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
where not exists (select 1 from loaded
                  where loaded.object_type = records.object_type and loaded.sid = records.record ->> 'sid')
