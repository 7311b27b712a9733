with source as (

    select * from {{ raw_source('directory', 'resource_assignments') }}

)

select
    {{ surrogate_key(['resource_type', 'resource_id', 'valid_from']) }} as assignment_id,
    resource_type,
    resource_id,
    client_id,
    agent_id,
    valid_from::timestamptz as valid_from,
    valid_to::timestamptz as valid_to

from source
