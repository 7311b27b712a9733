{# OpenRouter activity (UTC day x key x model endpoint): tokens carry the cost, requests are a quantity. #}
with activity as (

    select * from {{ ref('stg_openrouter__activity') }}

),

metrics as (

    select activity.*, metric.*
    from activity
    cross join lateral (
        values
            ('llm_tokens', 'token', (activity.prompt_tokens + activity.completion_tokens)::numeric,
             activity.cost_usd),
            ('llm_requests', 'request', activity.requests::numeric, 0::numeric)
    ) as metric (metric_name, metric_unit, metric_quantity, metric_cost_usd)

)

select
    'openrouter' as provider,
    'activity' as object_type,
    activity_id as external_id,
    null::text as linked_external_id,
    metric_name as metric,
    metric_unit as unit,
    metric_quantity as quantity,
    metric_cost_usd as cost_usd,
    'USD' as currency,
    metric_cost_usd as cost_native,
    activity_date::timestamp at time zone 'UTC' as occurred_at,
    null::text as agent_resource_type,
    null::text as agent_resource_id,
    'openrouter_key' as client_resource_type,
    api_key_hash as client_resource_id,
    null::text as fallback_resource_type,
    null::text as fallback_resource_id,
    jsonb_build_object(
        'model', model,
        'model_permaslug', model_permaslug,
        'endpoint_id', endpoint_id,
        'provider_name', provider_name,
        'prompt_tokens', prompt_tokens,
        'completion_tokens', completion_tokens,
        'reasoning_tokens', reasoning_tokens
    ) as attributes,
    'poll' as source_channels,
    observed_at as first_seen_at,
    observed_at as last_observed_at

from metrics
