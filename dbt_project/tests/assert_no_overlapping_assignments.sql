{# A resource may belong to one client at a time: two assignments of the same resource whose
   validity ranges overlap would attribute one event twice. #}
select
    earlier.resource_type,
    earlier.resource_id,
    earlier.client_id as first_client,
    later.client_id as second_client,
    earlier.valid_from as first_from,
    later.valid_from as second_from

from {{ ref('stg_directory__resource_assignments') }} as earlier
inner join {{ ref('stg_directory__resource_assignments') }} as later
    on later.resource_type = earlier.resource_type
    and later.resource_id = earlier.resource_id
    and later.assignment_id <> earlier.assignment_id
    and later.valid_from >= earlier.valid_from
    and (earlier.valid_to is null or later.valid_from < earlier.valid_to)
