with source as (

    select * from {{ raw_source('directory', 'clients') }}

)

select
    client_id,
    name as client_name,
    timezone as billing_timezone,
    billing_anchor_day::integer as billing_anchor_day,
    upper(currency) as currency

from source
