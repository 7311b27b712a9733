{# Attribution by the assignment valid at occurred_at (valid_from inclusive, valid_to exclusive):
   the agent's resource first (gives client and agent), then a client-level resource, then a fallback.
   Without a match the client is 'unattributed' and attribution_status says why. #}
with events as (

    select * from {{ ref('int_usage_events_unioned') }}

),

assignments as (

    select * from {{ ref('stg_directory__resource_assignments') }}

),

matched as (

    select
        events.*,
        by_agent.client_id as agent_client_id,
        by_agent.agent_id as matched_agent_id,
        coalesce(by_client.client_id, by_fallback.client_id) as resource_client_id,
        exists (
            select 1 from assignments as known
            where (known.resource_type, known.resource_id) in (
                (events.agent_resource_type, events.agent_resource_id),
                (events.client_resource_type, events.client_resource_id),
                (events.fallback_resource_type, events.fallback_resource_id)
            )
        ) as resource_known

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
    left join assignments as by_fallback
        on by_fallback.resource_type = events.fallback_resource_type
        and by_fallback.resource_id = events.fallback_resource_id
        and events.occurred_at >= by_fallback.valid_from
        and (by_fallback.valid_to is null or events.occurred_at < by_fallback.valid_to)

)

select
    *,
    concat_ws(':', provider, object_type, external_id, coalesce(metric, 'unknown_' || unit)) as idempotency_key,
    coalesce(agent_client_id, resource_client_id, 'unattributed') as client_id,
    matched_agent_id as agent_id,
    case
        when agent_client_id is not null or resource_client_id is not null then 'attributed'
        when coalesce(agent_resource_id, client_resource_id, fallback_resource_id) is null
            then 'unattributed:no_resource_id'
        when resource_known then 'unattributed:no_assignment_at_occurred_at'
        else 'unattributed:unknown_resource'
    end as attribution_status

from matched
