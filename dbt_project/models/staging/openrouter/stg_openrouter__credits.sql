{# One row per /credits snapshot: the account's lifetime usage as OpenRouter reported it at read_at.
   Coverage compares the change between readings with our activity (coverage_comparisons). #}
with source as (

    select * from {{ raw_source('openrouter', 'credits') }}

),

renamed as (

    select
        account,
        -- USD floats; numeric from here on (15 significant digits, more than OpenRouter reports)
        total_usage::numeric as total_usage_usd,
        total_credits::numeric as total_credits_usd,
        coalesce(fetched_at, to_timestamp(_dlt_load_id::numeric)) as read_at

    from source

)

select * from renamed
