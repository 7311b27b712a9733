with source as (

    select * from {{ raw_source('twilio', 'messages') }}

),

renamed as (

    select
        sid::text as message_sid,
        account_sid::text as account_sid,
        messaging_service_sid::text as messaging_service_sid,
        case when sid like 'SM%' then 'sms' when sid like 'MM%' then 'mms' end as message_type,
        direction::text as direction,
        status::text as status,
        "from"::text as from_number,
        "to"::text as to_number,
        {{ rfc2822_to_timestamptz('date_created') }} as created_at,
        {{ rfc2822_to_timestamptz('date_sent') }} as sent_at,
        {{ safe_numeric('num_segments') }} as segments,
        {{ safe_numeric('num_media') }} as media_count,
        {{ twilio_charge_usd('price') }} as cost,
        upper(price_unit)::text as currency,
        error_code,
        to_timestamp(_dlt_load_id::numeric) as observed_at

    from source

)

select * from renamed
