{# OpenRouter activity (UTC day x key x model endpoint): tokens carry the cost, requests are a quantity. #}
with activity as (

    select * from {{ ref('stg_openrouter__activity') }}

),

metrics as (

    select activity_id, 'llm_tokens' as metric, 'token' as unit,
           (prompt_tokens + completion_tokens)::numeric as quantity, cost_usd
    from activity

    union all

    select activity_id, 'llm_requests', 'request', requests::numeric, 0::numeric
    from activity

)

select
    'openrouter' as provider,
    'activity' as object_type,
    activity.activity_id as external_id,
    null::text as linked_external_id,
    metrics.metric,
    metrics.unit,
    metrics.quantity,
    metrics.cost_usd,
    'USD' as currency,
    metrics.cost_usd as cost_native,
    activity.activity_date::timestamp at time zone 'UTC' as occurred_at,
    null::text as agent_resource_type,
    null::text as agent_resource_id,
    'openrouter_key' as client_resource_type,
    activity.api_key_hash as client_resource_id,
    null::text as fallback_resource_type,
    null::text as fallback_resource_id,
    jsonb_build_object(
        'model', activity.model,
        'model_permaslug', activity.model_permaslug,
        'endpoint_id', activity.endpoint_id,
        'provider_name', activity.provider_name,
        'prompt_tokens', activity.prompt_tokens,
        'completion_tokens', activity.completion_tokens,
        'reasoning_tokens', activity.reasoning_tokens
    ) as attributes,
    'poll' as source_channels,
    activity.observed_at as first_seen_at,
    activity.observed_at as last_observed_at

from metrics
inner join activity on activity.activity_id = metrics.activity_id
