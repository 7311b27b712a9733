with source as (

    select * from {{ raw_source('twilio', 'usage_records') }}

),

renamed as (

    select
        account_sid,
        category,
        description,
        start_date::date as start_date,
        start_date as start_date_iso,  -- the raw text, indexed: day windows compare it as text
        end_date::date as end_date,
        nullif("count", '')::numeric as usage_count,
        count_unit,
        nullif(usage, '')::numeric as usage_quantity,
        usage_unit,
        -- Usage-record prices are positive totals, unlike call and message prices.
        nullif(price, '')::numeric as price,
        upper(price_unit) as currency,
        as_of::timestamptz as as_of

    from source

)

select * from renamed
