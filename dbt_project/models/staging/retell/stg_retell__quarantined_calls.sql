{# Calls the collector could not load (no call_id, a mistyped field), kept whole with the reason; a call
   quarantined for a mistyped field no longer is once the provider has sent it loadable. #}
with source as (

    select * from {{ raw_source('retell', 'calls_quarantine') }}

),

loaded as (

    select call_id from {{ raw_source('retell', 'calls') }}

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
where not exists (select 1 from loaded where loaded.call_id = source.record ->> 'call_id')
