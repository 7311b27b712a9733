{# Every provider's candidate events, in one shape, before attribution and checks. #}
{{ union_by_name([
    ref('int_retell_usage_events'),
    ref('int_twilio_usage_events'),
    ref('int_openrouter_usage_events'),
], [
    'provider', 'object_type', 'external_id', 'linked_external_id', 'metric', 'unit', 'quantity', 'cost_usd',
    'currency', 'cost_native', 'occurred_at', 'agent_resource_type', 'agent_resource_id',
    'client_resource_type', 'client_resource_id', 'fallback_resource_type', 'fallback_resource_id',
    'attributes', 'source_channels', 'first_seen_at', 'last_observed_at',
]) }}
