with source as (

    select * from {{ raw_source('retell', 'calls') }}

),

renamed as (

    select
        {{ retell_call_columns('to_jsonb(source)', call_id='source.call_id::text') }},
        source.workspace::text as workspace,
        to_timestamp(source._dlt_load_id::numeric) as observed_at

    from source

)

select * from renamed
