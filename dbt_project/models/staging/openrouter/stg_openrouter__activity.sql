with source as (

    select * from {{ raw_source('openrouter', 'activity') }}

),

renamed as (

    select
        {{ surrogate_key(['date', 'api_key_hash', 'model_permaslug', 'endpoint_id']) }} as activity_id,
        "date"::date as activity_date,
        api_key_hash,
        model,
        model_permaslug,
        endpoint_id,
        provider_name,
        -- USD floats; numeric from here on. dlt stores them as double precision, whose 15
        -- significant digits are more than OpenRouter reports.
        usage::numeric as cost_usd,
        byok_usage_inference::numeric as byok_cost_usd,
        requests,
        prompt_tokens,
        completion_tokens,
        reasoning_tokens,
        to_timestamp(_dlt_load_id::numeric) as observed_at

    from source

)

select * from renamed
