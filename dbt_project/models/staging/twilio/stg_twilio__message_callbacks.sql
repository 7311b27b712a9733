{# Messaging status callbacks: no price and no segment count (Twilio sends neither). #}
with source as (

    select * from {{ source('twilio_webhooks', 'twilio_callbacks') }}
    where resource = 'message'

),

renamed as (

    select
        delivery_id,
        sid as message_sid,
        account_sid,
        {{ twilio_callback_param('MessagingServiceSid') }} as messaging_service_sid,
        case when sid like 'SM%' then 'sms' when sid like 'MM%' then 'mms' end as message_type,
        status,
        {{ twilio_callback_param('From') }} as from_number,
        {{ twilio_callback_param('To') }} as to_number,
        received_at as observed_at

    from source

)

select * from renamed
