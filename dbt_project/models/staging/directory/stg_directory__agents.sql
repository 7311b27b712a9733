with source as (

    select * from {{ raw_source('directory', 'agents') }}

)

select
    agent_id,
    client_id,
    name as agent_name

from source
