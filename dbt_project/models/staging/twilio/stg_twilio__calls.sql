with source as (

    select * from {{ raw_source('twilio', 'calls') }}

),

renamed as (

    select
        sid::text as call_sid,
        account_sid::text as account_sid,
        parent_call_sid::text as parent_call_sid,
        direction::text as direction,
        status::text as status,
        "from"::text as from_number,
        "to"::text as to_number,
        phone_number_sid::text as phone_number_sid,
        {{ rfc2822_to_timestamptz('date_created') }} as created_at,
        {{ rfc2822_to_timestamptz('start_time') }} as started_at,
        {{ rfc2822_to_timestamptz('end_time') }} as ended_at,
        {{ safe_numeric('duration') }}::integer as duration_seconds,
        ceil({{ safe_numeric('duration') }} / 60)::integer as billed_minutes,
        {{ twilio_charge_usd('price') }} as cost,
        upper(price_unit)::text as currency,
        to_timestamp(_dlt_load_id::numeric) as observed_at

    from source

)

select * from renamed
