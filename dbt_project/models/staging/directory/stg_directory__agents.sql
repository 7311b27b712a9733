with source as (

    select * from {{ source('directory', 'agents') }}

)

select
    agent_id,
    client_id,
    name as agent_name

from source
