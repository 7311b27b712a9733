with source as (

    select * from {{ raw_source('openrouter', 'keys') }}

),

renamed as (

    select
        hash as api_key_hash,
        name as key_name,
        label as key_label,
        disabled as is_disabled,
        usage::numeric as lifetime_usage_usd,
        created_at::timestamptz as created_at

    from source

)

select * from renamed
