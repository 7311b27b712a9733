with source as (

    select * from {{ source('twilio', 'messages') }}

),

renamed as (

    select
        sid as message_sid,
        account_sid,
        messaging_service_sid,
        case when sid like 'SM%' then 'sms' when sid like 'MM%' then 'mms' end as message_type,
        direction,
        status,
        "from" as from_number,
        "to" as to_number,
        {{ rfc2822_to_timestamptz('date_created') }} as created_at,
        {{ rfc2822_to_timestamptz('date_sent') }} as sent_at,
        {{ safe_numeric('num_segments') }} as segments,
        {{ safe_numeric('num_media') }} as media_count,
        {{ twilio_charge_usd('price') }} as cost,
        upper(price_unit) as currency,
        error_code,
        to_timestamp(_dlt_load_id::numeric) as observed_at

    from source

)

select * from renamed
