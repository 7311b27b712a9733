{# Agents, one row per version (client, name) from the directory's snapshot, with the provider
   resources assigned to the agent now (Retell agent ids, Twilio numbers). #}
with versions as (

    select * from {{ ref('snap_directory__agents') }}

),

current_resources as (

    select
        agent_id,
        -- phone numbers only as salted hashes, as everywhere in the marts
        string_agg(resource_type || ':' || case when resource_type = 'twilio_phone_number'
                                               then {{ hash_phone('resource_id') }} else resource_id end,
                   ', ' order by resource_type, resource_id) as resources
    from {{ ref('stg_directory__resource_assignments') }}
    where agent_id is not null and valid_from <= {{ billing_as_of() }}
      and (valid_to is null or valid_to > {{ billing_as_of() }})
    group by agent_id

)

select
    md5(concat_ws(':', versions.agent_id, versions.dbt_valid_from::text)) as agent_version_id,
    versions.agent_id,
    versions.client_id,
    versions.agent_name,
    versions.dbt_valid_from as valid_from,
    versions.dbt_valid_to as valid_to,
    versions.dbt_valid_to is null as is_current,
    case when versions.dbt_valid_to is null then current_resources.resources end as current_resources

from versions
left join current_resources on current_resources.agent_id = versions.agent_id
