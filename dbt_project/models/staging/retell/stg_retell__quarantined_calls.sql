{# Calls the collector could not load (no call_id), kept whole with the reason. #}
with source as (

    select * from {{ raw_source('retell', 'calls_quarantine') }}

)

select
    call_id as quarantine_key,
    reason,
    account,
    record,
    {{ cents_to_usd(json_number("record -> 'call_cost' -> 'combined_cost'")) }} as cost_native,
    'USD' as currency,
    {{ epoch_ms_to_timestamptz(json_number("record -> 'start_timestamp'")) }} as occurred_at,
    seen_at

from source
