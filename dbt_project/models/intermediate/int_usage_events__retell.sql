{# Retell calls in long format: billed voice seconds carry combined_cost; LLM tokens are a quantity only,
   because their cost is already inside combined_cost. #}
with calls as (

    select * from {{ ref('int_retell__calls') }}

),

metrics as (

    {# A call type we do not know how to bill gets no metric, and is quarantined. #}
    select call_id, case when call_type in ('phone_call', 'web_call') then 'voice_seconds' end as metric,
           'second' as unit, billed_duration_seconds as quantity, combined_cost_usd as cost_usd
    from calls

    union all

    select call_id, case when call_type in ('phone_call', 'web_call') then 'llm_tokens' end, 'token',
           llm_tokens, 0::numeric
    from calls
    where llm_tokens is not null

)

select
    'retell' as provider,
    'call' as object_type,
    calls.call_id as external_id,
    calls.twilio_call_sid as linked_external_id,
    metrics.metric,
    metrics.unit,
    metrics.quantity,
    metrics.cost_usd,
    'USD' as currency,
    metrics.cost_usd as cost_native,
    calls.started_at as occurred_at,
    'retell_agent' as agent_resource_type,
    calls.retell_agent_id as agent_resource_id,
    null::text as client_resource_type,
    null::text as client_resource_id,
    null::text as fallback_resource_type,
    null::text as fallback_resource_id,
    jsonb_build_object(
        'workspace', calls.workspace,
        'retell_agent_id', calls.retell_agent_id,
        'agent_version', calls.agent_version,
        'call_type', calls.call_type,
        'call_status', calls.call_status,
        'cost_status', case when calls.combined_cost_usd is null then 'pending' else 'final' end,
        'direction', calls.direction,
        'disconnection_reason', calls.disconnection_reason,
        'product_costs', calls.product_costs,
        'llm_requests', calls.llm_requests
    ) as attributes,
    calls.source_channels,
    calls.first_seen_at,
    calls.last_observed_at

from metrics
inner join calls on calls.call_id = metrics.call_id
