with source as (

    select * from {{ source('retell_webhooks', 'retell_events') }}

),

renamed as (

    select
        delivery_id,
        event,
        {{ retell_call_columns("payload -> 'call'", call_id='call_id') }},
        received_at as observed_at

    from source

)

select * from renamed
