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
        created_at::timestamptz as created_at,
        account,
        -- today's part of the lifetime usage (UTC day of read_at): lifetime minus it closes yesterday
        usage_daily::numeric as usage_today_usd,
        {# keys loaded before the collector stamped fetched_at: the load's start #}
        {%- set loaded = load_relation(source('openrouter', 'keys')) if execute else none %}
        {% if loaded is none or has_column(loaded, 'fetched_at') -%}
        coalesce(fetched_at, to_timestamp(_dlt_load_id::numeric)) as read_at
        {%- else -%}
        to_timestamp(_dlt_load_id::numeric) as read_at
        {%- endif %}

    from source

)

select * from renamed
