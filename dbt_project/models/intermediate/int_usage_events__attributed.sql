{# Every provider's events, attributed by the assignment valid at occurred_at: the agent's resource
   first (gives client and agent), then a client-level resource (subaccount, key). #}
with events as (

    select * from {{ ref('int_usage_events__retell') }}
    union all
    select * from {{ ref('int_usage_events__twilio') }}
    union all
    select * from {{ ref('int_usage_events__openrouter') }}

),

assignments as (

    select * from {{ ref('stg_directory__resource_assignments') }}

),

attributed as (

    select
        events.*,
        by_agent.client_id as agent_client_id,
        by_agent.agent_id as matched_agent_id,
        by_client.client_id as resource_client_id

    from events
    left join assignments as by_agent
        on by_agent.resource_type = events.agent_resource_type
        and by_agent.resource_id = events.agent_resource_id
        and events.occurred_at >= by_agent.valid_from
        and (by_agent.valid_to is null or events.occurred_at < by_agent.valid_to)
    left join assignments as by_client
        on by_client.resource_type = events.client_resource_type
        and by_client.resource_id = events.client_resource_id
        and events.occurred_at >= by_client.valid_from
        and (by_client.valid_to is null or events.occurred_at < by_client.valid_to)

)

select
    *,
    concat_ws(':', provider, object_type, external_id, metric) as idempotency_key,
    coalesce(agent_client_id, resource_client_id, 'unattributed') as client_id,
    matched_agent_id as agent_id,
    case
        when agent_client_id is not null or resource_client_id is not null then 'attributed'
        else 'unattributed:no_assignment'
    end as attribution_status

from attributed
