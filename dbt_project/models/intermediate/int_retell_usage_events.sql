{# Retell calls in long format: billed voice seconds carry combined_cost; LLM tokens are a quantity only,
   because their cost is already inside combined_cost. #}
with calls as (

    select * from {{ ref('int_retell_calls_merged') }}

),

{# One row per metric; LLM tokens only when reported. A call type we do not know how to bill gets
   no metric, and is quarantined. #}
metrics as (

    select calls.*, metric.*
    from calls
    cross join lateral (
        values
            ('voice_seconds', 'second', billed_duration_seconds, combined_cost_usd),
            ('llm_tokens', 'token', llm_tokens, 0::numeric)
    ) as metric (metric_name, metric_unit, metric_quantity, metric_cost_usd)
    where metric.metric_name = 'voice_seconds' or llm_tokens is not null

)

select
    'retell' as provider,
    'call' as object_type,
    call_id as external_id,
    twilio_call_sid as linked_external_id,
    case when call_type in ('phone_call', 'web_call') then metric_name end as metric,
    metric_unit as unit,
    metric_quantity as quantity,
    metric_cost_usd as cost_usd,
    'USD' as currency,
    metric_cost_usd as cost_native,
    started_at as occurred_at,
    'retell_agent' as agent_resource_type,
    retell_agent_id as agent_resource_id,
    null::text as client_resource_type,
    null::text as client_resource_id,
    null::text as fallback_resource_type,
    null::text as fallback_resource_id,
    jsonb_build_object(
        'workspace', workspace,
        'retell_agent_id', retell_agent_id,
        'agent_version', agent_version,
        'call_type', call_type,
        'call_status', call_status,
        'cost_status', case when combined_cost_usd is null then 'pending' else 'final' end,
        'direction', direction,
        'disconnection_reason', disconnection_reason,
        'product_costs', product_costs,
        'llm_requests', llm_requests
    ) as attributes,
    source_channels,
    first_seen_at,
    last_observed_at

from metrics
