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
        {{ twilio_callback_param('ParentCallSid') }} as parent_call_sid,
        {{ twilio_callback_param('Direction') }} as direction,
        status,
        {{ twilio_callback_param('From') }} as from_number,
        {{ twilio_callback_param('To') }} as to_number,
        {{ safe_integer(twilio_callback_param('CallDuration')) }} as duration_seconds,
        {{ rfc2822_to_timestamptz(twilio_callback_param('Timestamp')) }} as event_at,
        received_at as observed_at

    from source

)

select * from renamed
