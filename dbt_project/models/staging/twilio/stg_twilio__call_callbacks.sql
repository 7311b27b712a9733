{# Voice status callbacks: no price (Twilio sends none), duration only once completed. #}
with source as (

    select * from {{ source('twilio_webhooks', 'twilio_callbacks') }}
    where resource = 'call'

),

renamed as (

    select
        delivery_id,
        sid as call_sid,
        account_sid,
        params ->> 'ParentCallSid' as parent_call_sid,
        params ->> 'Direction' as direction,
        status,
        params ->> 'From' as from_number,
        params ->> 'To' as to_number,
        nullif(params ->> 'CallDuration', '')::integer as duration_seconds,
        {{ rfc2822_to_timestamptz("params ->> 'Timestamp'") }} as event_at,
        received_at as observed_at

    from source

)

select * from renamed
