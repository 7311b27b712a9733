with source as (

    select * from {{ raw_source('retell', 'calls') }}

),

renamed as (

    select
        {{ retell_call_columns('call_json.fields', call_id='source.call_id::text') }},
        source.workspace::text as workspace,
        to_timestamp(source._dlt_load_id::numeric) as observed_at

    from source
    -- the row as jsonb once: inlined, it was rebuilt for every field (a third of a build's time);
    -- OFFSET 0 keeps it a subquery, and filters on call_id still reach the raw index
    cross join lateral (select to_jsonb(source) as fields offset 0) as call_json

)

select * from renamed
