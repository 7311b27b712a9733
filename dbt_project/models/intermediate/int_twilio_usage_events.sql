{# Twilio call legs (billed per started minute) and messages (SMS segments, MMS messages).
   The agent is found by our phone number; the client also by the messaging service or subaccount. #}
with calls as (

    select * from {{ ref('int_twilio_calls_merged') }}

),

messages as (

    select * from {{ ref('int_twilio_messages_merged') }}

),

call_events as (

    select
        'twilio' as provider,
        'call' as object_type,
        call_sid as external_id,
        parent_call_sid as linked_external_id,
        'voice_minutes' as metric,
        'minute' as unit,
        billed_minutes::numeric as quantity,
        case when currency = 'USD' then cost end as cost_usd,
        currency,
        cost as cost_native,
        occurred_at,
        'twilio_phone_number' as agent_resource_type,
        case when direction = 'inbound' then to_number else from_number end as agent_resource_id,
        'twilio_subaccount' as client_resource_type,
        account_sid as client_resource_id,
        null::text as fallback_resource_type,
        null::text as fallback_resource_id,
        jsonb_build_object(
            'account_sid', account_sid,
            'direction', direction,
            'status', status,
            'duration_seconds', duration_seconds,
            'cost_status', case when cost is null then 'pending' else 'final' end,
            'customer_number_hash', {{ hash_phone("case when direction = 'inbound' then from_number else to_number end") }},
            -- SIP and Client legs bill under their own Usage Record categories (coverage leaves them out)
            'sip_or_client', coalesce(from_number ~* '^(sip|client):' or to_number ~* '^(sip|client):', false)
        ) as attributes,
        source_channels,
        first_seen_at,
        last_observed_at

    from calls

),

message_events as (

    select
        'twilio' as provider,
        'message' as object_type,
        message_sid as external_id,
        null::text as linked_external_id,
        case message_type when 'mms' then 'mms_messages' when 'sms' then 'sms_segments' end as metric,
        case message_type when 'mms' then 'message' else 'segment' end as unit,
        case message_type when 'mms' then 1 else segments end::numeric as quantity,
        case when currency = 'USD' then cost end as cost_usd,
        currency,
        cost as cost_native,
        occurred_at,
        'twilio_phone_number' as agent_resource_type,
        case when direction = 'inbound' then to_number else from_number end as agent_resource_id,
        'twilio_messaging_service' as client_resource_type,
        messaging_service_sid as client_resource_id,
        'twilio_subaccount' as fallback_resource_type,
        account_sid as fallback_resource_id,
        jsonb_build_object(
            'account_sid', account_sid,
            'messaging_service_sid', messaging_service_sid,
            'direction', direction,
            'status', status,
            'media_count', media_count,
            'cost_status', case when cost is null then 'pending' else 'final' end,
            'customer_number_hash', {{ hash_phone("case when direction = 'inbound' then from_number else to_number end") }}
        ) as attributes,
        source_channels,
        first_seen_at,
        last_observed_at

    from messages

)

{{ union_by_name(['call_events', 'message_events'], [
    'provider', 'object_type', 'external_id', 'linked_external_id', 'metric', 'unit', 'quantity', 'cost_usd',
    'currency', 'cost_native', 'occurred_at', 'agent_resource_type', 'agent_resource_id',
    'client_resource_type', 'client_resource_id', 'fallback_resource_type', 'fallback_resource_id',
    'attributes', 'source_channels', 'first_seen_at', 'last_observed_at',
]) }}
